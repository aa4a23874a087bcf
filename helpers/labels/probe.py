"""The new head of a multi-label or regression model starts as the best linear probe of the
pretrained features (LP-FT: linear probing, then fine-tuning; Kumar et al. 2022), fitted in closed
form on the train split before LoRA training begins.

Why: a zero head learns the targets' scale far too slowly. Measured on Disneyland ratings (640
train reviews, MiniLM, 3 epochs at 2e-3, LoRA r 8): the pooled features vary by ~0.1 per dimension
across texts, so the zero-initialized head ended with weight norm 0.12 and test predictions with a
standard deviation of 0.0001 stars (R² 0.00, the training mean's MAE), where a ridge probe on the
same frozen features fits them closely. A probe start gives the fine-tuning a head that already
reads the features.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV

from helpers.core.threads import cpu_threads

# The probes' regularization, chosen on the train split itself (ridge: leave-one-out by generalized
# cross-validation; logistic: 3-fold), on standardized features. Measured on the Disneyland ratings
# above: GCV picks alpha 1,000 (train R² 0.46, test 0.23; 300 gives test 0.18, 3,000 0.23, 10,000
# 0.18), where a fixed small alpha fitted the train reviews to R² 0.65 and the test reviews to 0.08.
RIDGE_ALPHAS = np.logspace(-2, 5, 15)
LOGISTIC_CS = [0.01, 0.1, 1.0, 10.0]


def _head(model: torch.nn.Module) -> torch.nn.Linear:
    """The head's last linear layer, the trainable copy where peft wraps it (modules_to_save)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = getattr(base, "score", None) or getattr(base, "classifier", None)
    trainable = getattr(head, "modules_to_save", None)
    if trainable is not None:
        head = trainable["default"]
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ValueError("the model has no linear head (score or classifier) to initialize")
    return linears[-1]


@torch.inference_mode()
def features(model: torch.nn.Module, tokenizer, texts: list[str], max_length: int, batch_size: int,
             device: str) -> np.ndarray:
    """The input of the head's last linear layer per text: the pooled encoder state, or a decoder's
    state at its last real token (where its sequence-classification head reads)."""
    head, found = _head(model), []
    hook = head.register_forward_hook(lambda module, args, output: found.append(args[0].float().cpu()))
    was_training = model.training
    model.eval()
    rows = []
    try:
        with cpu_threads(device):
            for start in range(0, len(texts), batch_size):
                inputs = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length,
                                   padding=True, return_tensors="pt").to(device)
                found.clear()
                model(**inputs)
                states = found[-1]
                if states.dim() == 3:  # a decoder: every position is scored, its last real token is read
                    last = inputs["attention_mask"].sum(dim=1).cpu() - 1
                    states = states[torch.arange(len(states)), last]
                rows.append(states.numpy())
    finally:
        hook.remove()
        model.train(was_training)
    return np.concatenate(rows)


def fit_head(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, label_type: str, seed: int) -> dict:
    """Set the head's weights (and bias, where it has one) to the probe fitted on features `x`:
    ridge on standardized regression targets, one logistic regression per label for multi-label
    (a label without a positive train text keeps weight 0 and a large negative bias). Returns the
    probe's fit on the train split."""
    head = _head(model)
    with_bias = head.bias is not None
    # Standardized features: a decoder's last-token states run to hundreds, which leaves lbfgs crawling
    # and one regularization strength meaning different things per dimension. Without a bias to absorb
    # the centering (a decoder's score head), the features are only scaled.
    center = x.mean(axis=0) if with_bias else np.zeros(x.shape[1])
    scale = x.std(axis=0) + 1e-6
    x = (x - center) / scale
    if label_type == "regression":
        probe = RidgeCV(alphas=RIDGE_ALPHAS, fit_intercept=with_bias).fit(x, y)
        weight, bias = probe.coef_.reshape(y.shape[1], -1), np.atleast_1d(probe.intercept_)
        quality = {"probe_train_r2": float(probe.score(x, y)), "probe_alpha": float(probe.alpha_)}
    else:
        weight, bias = np.zeros((y.shape[1], x.shape[1])), np.full(y.shape[1], -6.0)
        for j in range(y.shape[1]):
            if 0 < y[:, j].sum() < len(y):
                folds = int(min(3, y[:, j].sum(), len(y) - y[:, j].sum()))
                probe = (LogisticRegressionCV(Cs=LOGISTIC_CS, cv=folds, fit_intercept=with_bias, max_iter=500,
                                              random_state=seed) if folds >= 2  # else one positive text: C = 1
                         else LogisticRegression(C=1.0, fit_intercept=with_bias, max_iter=500, random_state=seed))
                probe.fit(x, y[:, j])
                weight[j], bias[j] = probe.coef_[0], probe.intercept_[0] if with_bias else 0.0
        decided = (x @ weight.T + (bias if with_bias else 0)) > 0
        quality = {"probe_train_micro_f1": float(2 * (decided & (y > 0)).sum()
                                                 / max(decided.sum() + (y > 0).sum(), 1))}
    weight = weight / scale  # back to the raw features the head reads
    bias = bias - weight @ center
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
        if with_bias:
            head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))
    return quality
