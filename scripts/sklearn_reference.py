"""Live reference values for resnext-stats' point estimates (crates/resnext-stats/tests/sklearn.rs).

The test sends a JSON list of cases on stdin and reads one JSON answer per case on stdout. Each
case is {"probs": [[...], ...], "labels": [...], "positive": k, "threshold": t,
"min_tpr": m, "b": [[...], ...] or null}: probability rows (rows summing to 1), labels, and
for binary cases the positive class, its threshold (positive when p >= t), the minimum
sensitivity of the partial AUC, and optionally a second model's rows for DeLong's test.

Every value comes from scikit-learn, statsmodels, scipy or numpy, not from the Rust code:
- binary at the threshold: accuracy_score, balanced_accuracy_score, recall_score (sensitivity;
  specificity is the recall of the negative class), precision_score (PPV; NPV is the precision
  of the negative class), f1_score; roc_auc_score, average_precision_score;
- multi-class under top-1 decisions (numpy's argmax, first of a tie): accuracy, balanced
  accuracy, macro recall/precision/F1, macro specificity and NPV from
  multilabel_confusion_matrix, roc_auc_score(multi_class="ovr", average="macro"),
  average_precision_score(average="macro") on the binarised labels, and each class's
  one-vs-rest values;
- the ISIC 2024 partial AUC twice: the challenge's own score() (verbatim apart from names) and
  scikit-learn's roc_auc_score(max_fpr=1 - min_tpr) on the flipped problem (labels 1 - y,
  scores -s), which is McClish-standardised, 0.5 * (1 + (A - A_min) / (A_max - A_min)) with
  A_min = max_fpr^2 / 2 and A_max = max_fpr; the raw area A is recovered from it;
- calibration intercept (slope fixed at 1: logit(p) as an offset) and slope: statsmodels'
  GLM(Binomial) fits, logit of p clamped to [1e-12, 1 - 1e-12] as resnext-stats does;
- ECE: 15 equal-width bins (lower, upper] of the top probability, in numpy;
- DeLong: a numpy port of Sun & Xu's fast DeLong (midranks, 2014), p from scipy's normal tail.

Run: python scripts/sklearn_reference.py < cases.json  (scikit-learn 1.9.1, statsmodels 0.15.0,
numpy 2.4, scipy 1.17; `cargo xtask setup` installs them with the checkers).
"""

import json
import sys
import warnings

import numpy as np
import scipy.stats
import statsmodels.api as sm
from sklearn.metrics import (
    accuracy_score,
    auc,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    multilabel_confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.preprocessing import label_binarize

P_CLAMP = 1e-12
ECE_BINS = 15


def isic_pauc(y, s, min_tpr):
    """The ISIC 2024 challenge metric (its score() function, Kaggle), verbatim apart from names."""
    v_gt = abs(np.asarray(y) - 1)
    v_pred = -1.0 * np.asarray(s)
    max_fpr = abs(1 - min_tpr)
    fpr, tpr, _ = roc_curve(v_gt, v_pred, sample_weight=None)
    if max_fpr is None or max_fpr == 1:
        return auc(fpr, tpr)
    stop = np.searchsorted(fpr, max_fpr, "right")
    x_interp = [fpr[stop - 1], fpr[stop]]
    y_interp = [tpr[stop - 1], tpr[stop]]
    tpr = np.append(tpr[:stop], np.interp(max_fpr, x_interp, y_interp))
    fpr = np.append(fpr[:stop], max_fpr)
    return auc(fpr, tpr)


def mcclish_inverted(y, s, min_tpr):
    """The raw partial area from scikit-learn's McClish-standardised partial AUC."""
    max_fpr = 1 - min_tpr
    if max_fpr == 1:
        return roc_auc_score(1 - y, -s)
    standardised = roc_auc_score(1 - y, -s, max_fpr=max_fpr)
    a_min, a_max = 0.5 * max_fpr**2, max_fpr
    return a_min + (2 * standardised - 1) * (a_max - a_min)


def calibration(y, p):
    """Intercept with logit(p) as an offset, and the slope of the joint fit (statsmodels)."""
    p = np.clip(p, P_CLAMP, 1 - P_CLAMP)
    x = np.log(p / (1 - p))
    ones = np.ones((len(y), 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_a = sm.GLM(y, ones, family=sm.families.Binomial(), offset=x).fit(
            tol=1e-14, maxiter=200
        )
        fit_b = sm.GLM(y, np.column_stack([ones, x]), family=sm.families.Binomial()).fit(
            tol=1e-14, maxiter=200
        )
    return {"intercept": float(fit_a.params[0]), "slope": float(fit_b.params[1])}


def ece(probs, y):
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(len(y)), pred]
    bins = np.clip(np.ceil(conf * ECE_BINS).astype(int), 1, ECE_BINS) - 1
    total = 0.0
    for b in range(ECE_BINS):
        inside = bins == b
        if inside.any():
            total += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return float(total)


def midrank(x):
    """Sun & Xu's compute_midrank: 1-based ranks, ties the mean of theirs."""
    order = np.argsort(x, kind="mergesort")
    z = x[order]
    n = len(x)
    t = np.zeros(n)
    i = 0
    while i < n:
        j = i
        while j < n and z[j] == z[i]:
            j += 1
        t[i:j] = 0.5 * (i + j - 1) + 1
        i = j
    out = np.empty(n)
    out[order] = t
    return out


def fast_delong(scores, m):
    """Sun & Xu (2014): scores is k x (m + n), the m positives first. AUCs and covariance."""
    n = scores.shape[1] - m
    k = scores.shape[0]
    tx = np.array([midrank(s[:m]) for s in scores])
    ty = np.array([midrank(s[m:]) for s in scores])
    tz = np.array([midrank(s) for s in scores])
    aucs = tz[:, :m].sum(axis=1) / m / n - (m + 1.0) / 2.0 / n
    v01 = (tz[:, :m] - tx) / n
    v10 = 1.0 - (tz[:, m:] - ty) / m
    sx = np.cov(v01).reshape(k, k)
    sy = np.cov(v10).reshape(k, k)
    return aucs, sx / m + sy / n


def delong(y, sa, sb):
    pos, neg = y == 1, y == 0
    scores = np.array([np.concatenate([s[pos], s[neg]]) for s in (sa, sb)])
    aucs, cov = fast_delong(scores, int(pos.sum()))
    l = np.array([1.0, -1.0])
    se = float(np.sqrt(l @ cov @ l))
    z = float((aucs[0] - aucs[1]) / se)
    return {
        "auc_a": float(aucs[0]),
        "auc_b": float(aucs[1]),
        "se": se,
        "z": z,
        "p_value": float(2 * scipy.stats.norm.sf(abs(z))),
    }


def binary(case):
    probs = np.array(case["probs"], dtype=float)
    y_all = np.array(case["labels"])
    k = case["positive"]
    y = (y_all == k).astype(int)
    s = probs[:, k]
    pred = (s >= case["threshold"]).astype(int)
    nan = np.nan
    out = {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "sensitivity": recall_score(y, pred, pos_label=1, zero_division=nan),
        "specificity": recall_score(y, pred, pos_label=0, zero_division=nan),
        "ppv": precision_score(y, pred, pos_label=1, zero_division=nan),
        "npv": precision_score(y, pred, pos_label=0, zero_division=nan),
        "f1": f1_score(y, pred, pos_label=1, zero_division=nan),
        "roc_auc": roc_auc_score(y, s),
        "pr_auc": average_precision_score(y, s),
        "ece": ece(probs, y_all),
        "pauc_isic": isic_pauc(y, s, case["min_tpr"]),
        "pauc_mcclish_inverted": mcclish_inverted(y, s, case["min_tpr"]),
        "calibration": [dict(calibration(y, s), **{"class": k})],
    }
    if case.get("b") is not None:
        out["delong"] = delong(y, s, np.array(case["b"], dtype=float)[:, k])
    return out


def multiclass(case):
    probs = np.array(case["probs"], dtype=float)
    y = np.array(case["labels"])
    classes = probs.shape[1]
    pred = probs.argmax(axis=1)
    labels = list(range(classes))
    nan = np.nan
    mcm = multilabel_confusion_matrix(y, pred, labels=labels)
    tn, fp = mcm[:, 0, 0], mcm[:, 0, 1]
    fn, tp = mcm[:, 1, 0], mcm[:, 1, 1]
    onehot = label_binarize(y, classes=labels)
    recall = recall_score(y, pred, labels=labels, average=None, zero_division=nan)
    precision = precision_score(y, pred, labels=labels, average=None, zero_division=nan)
    f1 = f1_score(y, pred, labels=labels, average=None, zero_division=nan)
    per_class = [
        {
            "class": c,
            "sensitivity": recall[c],
            "specificity": tn[c] / (tn[c] + fp[c]),
            "ppv": precision[c],
            "npv": tn[c] / (tn[c] + fn[c]),
            "f1": f1[c],
            "roc_auc": roc_auc_score(onehot[:, c], probs[:, c]),
            "pr_auc": average_precision_score(onehot[:, c], probs[:, c]),
        }
        for c in labels
    ]
    return {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "sensitivity": recall_score(y, pred, average="macro", zero_division=nan),
        "specificity": float(np.mean(tn / (tn + fp))),
        "ppv": precision_score(y, pred, average="macro", zero_division=nan),
        "npv": float(np.mean(tn / (tn + fn))),
        "f1": f1_score(y, pred, average="macro", zero_division=nan),
        "roc_auc": roc_auc_score(y, probs, multi_class="ovr", average="macro"),
        "pr_auc": average_precision_score(onehot, probs, average="macro"),
        "ece": ece(probs, y),
        "per_class": per_class,
        "calibration": [
            dict(calibration(onehot[:, c], probs[:, c]), **{"class": c}) for c in labels
        ],
    }


def plain(v):
    """numpy scalars as JSON numbers; NaN (undefined) as null."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    v = float(v)
    return None if np.isnan(v) else v


def main():
    cases = json.load(sys.stdin)
    answers = [plain(binary(c) if len(c["probs"][0]) == 2 else multiclass(c)) for c in cases]
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
