"""LLM service: chat completions and embeddings over gRPC and an OpenAI-compatible HTTP surface."""
