"""Generation: causal LMs that answer in text (a JSON decision with a rationale; an instruction's
answer; an SQL query) rather than through a classification head. One concept per module:

- schema: the answer's JSON schema (decision, rationale, abstain) and the training target
- parse: a generated answer back into a decision, however broken its JSON
- chat: prompts through the model's chat template; supervised examples with the prompt masked
- decode: greedy generation, and the labels' probabilities at the decision position
- sft: supervised fine-tuning (loss on the answer tokens only)
- metrics: parse and schema rates, abstention, rationale overlap with a human span
- instruction: instruction answers scored (final number, ROUGE-L, length)
- sql: schemas as CREATE TABLE, seeded generated rows, queries executed and compared, normalized
- task_stage: 02_train, 03_evaluate and 04_speed of a task dataset (instruction, sql), base vs fine-tuned
"""
