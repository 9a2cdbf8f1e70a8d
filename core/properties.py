"""The conformance properties, registered by kind: name -> what it checks.

incell/conformance/test_<kind>.py holds one test function per entry (test_<name>);
the suite refuses to run if the two differ, so a property exists exactly when it is
listed here. The driver validates --property against this table without importing
the suite (which needs numpy, hypothesis and the engine).
"""

from __future__ import annotations

PROPERTIES: dict[str, dict[str, str]] = {
    "generation": {
        "greedy_determinism": "the same greedy call twice gives identical token ids",
        "batch_invariance": "a prompt alone and at any position in a padded batch: the same ids",
        "padding_invariance": "left padding changes neither next-token logits nor their argmax",
        "order_invariance": "permuting the batch permutes the outputs, nothing else",
        "streaming_equals_generate": "streamed deltas, joined, equal generate(): text and ids",
        "length_contract": "EOS ignored: exactly max_new_tokens; no stop before min_new_tokens",
        "eos_stop": "a stop token id ends the row at its first occurrence, excluded",
        "stop_strings": "stop strings per row, across token boundaries, kept or dropped as declared",
        "tokenization_parity": "prompt ids equal the reference tokenizer's, with exactly one BOS",
        "chat_template": "chat() feeds exactly the template's ids, one BOS",
        "seeded_sampling": "same seed, same output; different seeds differ; no seed leaks",
        "continuation": "generating n tokens equals generating k, then continuing from the ids",
        "call_order_independence": "any call gives what a fresh instance gives, after any calls",
        "idempotence": "returned results are not changed by later calls",
        "lifecycle": "load, close, load again: the same results",
        "typed_errors": "bad input raises InvalidParameterError naming the problem",
        "greedy_parity": "greedy ids equal the pinned transformers reference (top-k at a divergence)",
        "logprobs": "log-probabilities are a log-softmax equal to the reference's within tolerance",
        "unsupported_capabilities": "a capability declared unsupported raises, naming itself",
        "quantization_quality": "next-token distributions within the quantization's bound of the "
                                "float32 reference: KL, top-1 agreement, RMS Δp",
        "lora_adapter": "a LoRA adapter set at run time matches the weights with it merged; "
                        "removing it gives the engine's own output back",
        "tokenizer_real_text": "on the trained model, the engine's own tokenizer gives the "
                               "reference's ids for every sample of the real-text corpus (prose, "
                               "code, whitespace runs, digits, emoji, CJK, right-to-left)",
        "special_tokens_in_text": "special-token strings typed as text: the engine parses them or "
                                  "keeps them as text, equal to the reference in that mode, named",
        "eos_and_stops": "on the trained model, a chat answer ends at <|im_end|> (finish_reason "
                         "eos, the token not in the ids or text), and a stop string on its real "
                         "text ends it there (finish_reason stop)",
        "greedy_margins": "on the trained model, greedy ids against the pinned reference; a "
                          "departure is a near tie only where the reference's top-2 margin there "
                          "is within the engine's numerical noise at its precision",
        "streaming_utf8": "on the trained model, an answer whose characters span several tokens "
                          "(Japanese, emoji) streams whole characters: the deltas, joined, equal "
                          "generate()'s text",
        "text_quality": "on the trained model, perplexity on a committed real text (llama-perplexity's "
                        "windows), KL and top-1 agreement against the float32 reference, and how "
                        "many greedy answers to committed questions stay the reference's",
        "chat_template_turns": "on the trained model, the engine's own chat path gives the "
                               "template's ids with a system turn, without one (the template's "
                               "default), over several turns, with the generation prompt, no "
                               "doubled BOS",
    },
    "embedding": {
        "shape_and_dimension": "embed() returns float32 (n, dimension)",
        "reference_parity": "cosine with sentence-transformers >= 1 - the declared tolerance",
        "unit_norm": "normalize=True gives rows of unit L2 norm",
        "batch_size_invariance": "each text embedded alone equals its row in a batch",
        "order_invariance": "permuting the inputs permutes the rows, nothing else",
        "truncation_contract": "over-long inputs embed as their truncation",
        "whitespace_contract": "extra whitespace changes nothing, or something, as declared",
        "known_value": "on the real all-MiniLM-L6-v2, the model card's cosine within 0.001",
        "call_order_independence": "embed() after any prior calls equals a fresh instance's",
        "typed_errors": "bad input raises InvalidParameterError; the empty string as declared",
        "quantization_quality": "cosine to the float32 vectors and the known similarity's drift "
                                "within the quantization's bound",
    },
    "api": {
        "models_endpoint": "GET /v1/models answers a list naming the served model",
        "sse_framing": "a stream is text/event-stream of data: JSON events, ended by [DONE]",
        "stream_usage": "stream_options.include_usage brings a usage chunk counting the tokens",
        "usage_counts": "usage counts prompt and generated tokens, and their sum",
        "finish_reasons": "finish_reason is length at max_tokens, stop at a stop string",
        "max_tokens": "max_tokens bounds the tokens generated (exactly, with EOS off)",
        "stop": "a stop string ends the text before it (the string not returned)",
        "n_choices": "n=2 returns two choices, indexed 0 and 1",
        "seed": "the same seed gives the same text; other seeds another",
        "logprobs_fields": "logprobs=N: each token's log-probability and at most N alternatives",
        "chat_stream": "a chat stream starts with role assistant; its deltas join to the answer",
        "bad_input": "bad input gets a 4xx with an OpenAI error object; the server answers after",
        "embeddings_shape": "a batch gives one vector per input, in index order, one dimension",
        "base64_encoding": "encoding_format base64 decodes to the float vectors",
        "wire_parity": "the server and the same engine in process: the same greedy output",
        "json_answers": "non-streamed answers are JSON objects of OpenAI's shape",
        "keep_alive": "a connection kept alive after an answer (no Connection: close) takes the "
                      "next request",
    },
}

TRAINED_MODEL = frozenset({"tokenizer_real_text", "special_tokens_in_text", "chat_template_turns",
                           "text_quality",
                           "eos_and_stops", "streaming_utf8", "greedy_margins"})
"""Generation properties only a trained model can test: they run on a cell's trained fixtures
(compat/matrix.toml [trained]), every other property on its random ones."""
