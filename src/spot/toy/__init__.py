"""The embedded small world: tasks, a character tokenizer, a tiny model and a programmatic Oracle.

Everything here goes through the same transformers APIs (AutoTokenizer, AutoModelForCausalLM) as a real
Hugging Face model, so the toy world exercises exactly the code paths a real run uses.
"""
