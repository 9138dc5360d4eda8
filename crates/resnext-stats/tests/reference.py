"""Reference values for resnext-stats' tests, computed with numpy, scipy and scikit-learn.

Run: python3 crates/resnext-stats/tests/reference.py  (numpy 2.4, scipy 1.17, scikit-learn 1.9,
and statsmodels 0.15, which scripts/sklearn_reference.py imports: the setup venv's Python has them)
The data sets are printed as Rust literals and pasted, with the values, into tests/*.rs.
"""

import pathlib
import sys

import numpy as np
from scipy import optimize, special, stats
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
    auc,
)
from sklearn.preprocessing import label_binarize

# the ISIC 2024 metric, verbatim, lives beside the live reference check
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "scripts"))
from sklearn_reference import isic_pauc  # noqa: E402


def rust(name, values):
    if isinstance(values[0], (int, np.integer)):
        body = ", ".join(str(int(v)) for v in values)
    else:
        body = ", ".join(repr(float(v)) for v in values)
    print(f"const {name}: [{'usize' if isinstance(values[0], (int, np.integer)) else 'f64'}; {len(values)}] = [{body}];")


print("// ---- binary with ties (auc.rs, binary.rs)")
y = np.array([0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1])
s = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.2, 0.9, 0.6, 0.7, 0.1, 0.55])
print("ties: roc_auc", roc_auc_score(y, s), "ap", average_precision_score(y, s))
for m in [0.0, 0.5, 0.8]:
    print(f"ties: isic pauc min_tpr={m}", isic_pauc(y, s, m))
tn, fp, fn, tp = confusion_matrix(y, s >= 0.5).ravel()
print("ties at 0.5: tp fp tn fn", tp, fp, tn, fn)

rng = np.random.default_rng(20240601)
n = 60
y2 = (rng.random(n) < 0.3).astype(int)
s2 = np.round(np.clip(rng.normal(0.35 + 0.25 * y2, 0.2), 0, 1), 1)
rust("LABELS", y2)
rust("SCORES", s2)
print("random60: roc_auc", roc_auc_score(y2, s2), "ap", average_precision_score(y2, s2))
for m in [0.0, 0.3, 0.8, 0.95]:
    print(f"random60: isic pauc min_tpr={m}", isic_pauc(y2, s2, m))

print("// ---- DeLong (delong.rs), the O(mn) placement values of DeLong et al. 1988")
n = 50
y3 = (rng.random(n) < 0.4).astype(int)
a3 = np.round(np.clip(rng.normal(0.4 + 0.3 * y3, 0.2), 0, 1), 2)
b3 = np.round(np.clip(0.5 * a3 + 0.5 * rng.normal(0.45 + 0.1 * y3, 0.2), 0, 1), 2)
rust("LABELS", y3)
rust("A", a3)
rust("B", b3)


def psi(x, yv):
    return (x > yv) + 0.5 * (x == yv)


def delong_slow(y, scores):
    pos, neg = [sc[y == 1] for sc in scores], [sc[y == 0] for sc in scores]
    m, nn = len(pos[0]), len(neg[0])
    aucs, v10, v01 = [], [], []
    for p, q in zip(pos, neg):
        P = psi(p[:, None], q[None, :])
        aucs.append(P.mean())
        v10.append(P.mean(axis=1))
        v01.append(P.mean(axis=0))
    s10, s01 = np.cov(np.array(v10)), np.cov(np.array(v01))
    S = s10 / m + s01 / nn
    var = S[0, 0] + S[1, 1] - 2 * S[0, 1]
    d = aucs[0] - aucs[1]
    z = d / np.sqrt(var)
    return aucs, d, np.sqrt(var), z, 2 * stats.norm.sf(abs(z))


print("delong: auc_a auc_b diff se z p", *delong_slow(y3, [a3, b3]))
print("roc_auc_score check", roc_auc_score(y3, a3), roc_auc_score(y3, b3))

print("// ---- McNemar (mcnemar.rs)")
for b, c in [(3, 10), (0, 5), (7, 7), (12, 12), (30, 15), (20, 20), (1, 23), (0, 0)]:
    if b + c < 25:
        p = 1.0 if b + c == 0 else stats.binomtest(min(b, c), b + c, 0.5).pvalue
        kind = "exact"
    else:
        x = (abs(b - c) - 1) ** 2 / (b + c)
        p = stats.chi2.sf(x, 1)
        kind = "chi2"
    print(f"mcnemar b={b} c={c} {kind} p={p!r}")

print("// ---- calibration (calibration.rs), scipy root of the score equations")
n = 40
x_true = rng.normal(0, 1.3, n)
y4 = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + 0.7 * x_true)))).astype(int)
p4 = np.round(1 / (1 + np.exp(-x_true)), 3)
rust("LABELS", y4)
rust("P", p4)
xl = np.log(p4 / (1 - p4))


def joint(t):
    a, b = t
    r = y4 - special.expit(a + b * xl)
    return [r.sum(), (r * xl).sum()]


a, b = optimize.root(joint, [0.0, 1.0], tol=1e-14).x
v = special.expit(a + b * xl) * (1 - special.expit(a + b * xl))
H = np.array([[v.sum(), (v * xl).sum()], [(v * xl).sum(), (v * xl * xl).sum()]])
cov = np.linalg.inv(H)
citl = optimize.brentq(lambda a: (y4 - special.expit(a + xl)).sum(), -10, 10, xtol=1e-15)
v1 = special.expit(citl + xl) * (1 - special.expit(citl + xl))
print("calibration: slope", b, "slope_se", np.sqrt(cov[1, 1]), "intercept", citl, "intercept_se", 1 / np.sqrt(v1.sum()))

print("// ---- multi-class (multiclass.rs)")
n, k = 24, 3
y5 = rng.integers(0, k, n)
raw = rng.dirichlet([1, 1, 1], n) * 0.6 + 0.4 * np.eye(k)[y5] * (rng.random((n, 1)) < 0.7)
raw = raw / raw.sum(axis=1, keepdims=True)
p5 = np.round(raw, 3)
p5[:, 2] = np.round(1 - p5[:, 0] - p5[:, 1], 3)
rust("LABELS", y5)
print("const PROBS: [[f64; 3]; %d] = [%s];" % (n, ", ".join("[" + ", ".join(repr(float(v)) for v in r) + "]" for r in p5)))
pred = p5.argmax(axis=1)
cm = confusion_matrix(y5, pred, labels=range(k))
tp = np.diag(cm)
fp = cm.sum(axis=0) - tp
fn = cm.sum(axis=1) - tp
tn = n - tp - fp - fn
print("accuracy", (pred == y5).mean())
print("balanced_accuracy", balanced_accuracy_score(y5, pred))
print("macro sensitivity", recall_score(y5, pred, average="macro"))
print("macro specificity", np.mean(tn / (tn + fp)))
print("macro ppv", precision_score(y5, pred, average="macro"))
print("macro npv", np.mean(tn / (tn + fn)))
print("macro f1", f1_score(y5, pred, average="macro"))
print("macro roc_auc", roc_auc_score(y5, p5, multi_class="ovr", average="macro"))
print("macro pr_auc", average_precision_score(label_binarize(y5, classes=range(k)), p5, average="macro"))
conf = p5.max(axis=1)
bins = np.clip(np.ceil(conf * 15).astype(int), 1, 15) - 1
ece = sum((bins == b).sum() / n * abs((pred == y5)[bins == b].mean() - conf[bins == b].mean()) for b in range(15) if (bins == b).any())
print("ece", ece)

print("// ---- erfc (normal.rs)")
for x in [-1.0, 0.0, 0.1, 0.5, 1.0, 2.0, 2.4999, 2.5, 3.0, 5.0, 10.0, 26.0]:
    print(f"erfc({x}) = {special.erfc(x)!r}")
print("norm.cdf(-1.959963984540054) =", repr(stats.norm.cdf(-1.959963984540054)))

print("// ---- SplitMix64 (bootstrap.rs), from seed 1234567")
M = (1 << 64) - 1
state = 1234567
out = []
for _ in range(5):
    state = (state + 0x9E3779B97F4A7C15) & M
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    out.append(z ^ (z >> 31))
print(out)
