"""The compatibility ladder: matrix expansion, rungs, results, signatures."""
