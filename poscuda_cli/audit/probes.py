"""Small heads trained on frozen pretrained embeddings (poscuda_cli/encoders): the attacker who takes a
pretrained encoder off the shelf and fits a classifier on top (scikit-learn, ``[encoders]``).

* ``linear``: multinomial logistic regression on the standardised embedding (for kws, its
  whole sequence of windows, flattened);
* ``mlp``: the same input through one hidden layer of 256 ReLU units (Adam, L2 1e-3).
"""

import numpy as np

from .models import PRETRAINED


def head_of(model):
    """``kws-linear`` -> ``linear``."""
    return model.rsplit("-", 1)[1]


def train_and_test(model, train_x, train_y, test_x, test_y, seed=0):
    """Fit ``model``'s head on ``train_x`` (clips, ...) embeddings; return (train accuracy, test accuracy)."""
    if model not in PRETRAINED:
        raise ValueError(f"{model!r} is not a pretrained-encoder attacker")
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    train_x = train_x.reshape(len(train_x), -1).astype(np.float64)
    test_x = test_x.reshape(len(test_x), -1).astype(np.float64)
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    if head_of(model) == "linear":
        head = LogisticRegression(C=1.0, max_iter=3000)
    else:
        head = MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, max_iter=300, random_state=seed)
    head.fit(train_x, train_y)
    return float(head.score(train_x, train_y)), float(head.score(test_x, test_y)) if len(test_x) else 0.0
