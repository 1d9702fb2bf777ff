"""The model: provider chain, prompts, reply parsing, and the generation stage that turns a brief into files."""
