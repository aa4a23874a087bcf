"""`senticompare bench`: our training and inference path against the HF Trainer baseline (pad to max length)."""
