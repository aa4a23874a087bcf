"""Stage 02_train: models loaded and wrapped with LoRA (models), fine-tuned by the Trainer (trainer, dropout)."""
