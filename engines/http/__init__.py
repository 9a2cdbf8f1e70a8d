"""Engines over HTTP: the OpenAI wire (wire.py: JSON requests, server-sent events read byte by
byte, errors typed), the server process (server.py: a free loopback port, a process group of its
own, stopped whole), and the client adapters (client.py: a Generator and an Embedder over a
server's OpenAI API, which the server engines' modules subclass)."""
