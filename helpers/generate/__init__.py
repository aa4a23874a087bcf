"""Generation: causal LMs that answer in text (a JSON decision with a rationale, for now) rather
than through a classification head. One concept per module:

- schema: the answer's JSON schema (decision, rationale, abstain) and the training target
- parse: a generated answer back into a decision, however broken its JSON
- chat: prompts through the model's chat template; supervised examples with the prompt masked
- decode: greedy generation, and the labels' probabilities at the decision position
- sft: supervised fine-tuning (loss on the answer tokens only)
- metrics: parse and schema rates, abstention, rationale overlap with a human span
"""
