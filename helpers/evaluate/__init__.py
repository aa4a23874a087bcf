"""Stage 03_evaluate: predictions (inference), quality, significance, calibration, selective prediction, conformal sets, costs (uncertainty) and the base-model baseline (prompts)."""
