"""The agent engine: the Claude loop, its tools, blocks, pricing and transcript."""
