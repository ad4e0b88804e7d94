"""The encoder's unigram (SentencePiece) tokenizer in Python, with a per-word cache.

Why: a static embedder is a table lookup per token, so the tokenizer *is* its cost. Splitting
into words first (SentencePiece pieces never span a space) and memoising each word's pieces
makes a prompt cost one dict lookup per already-seen word; a new word costs one Viterbi pass
over its characters. The result matches the C engine's tokenizer (same normaliser, same
metaspace rule, same best-score segmentation, unknown characters as ``<unk>``).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

from rankgate.embed._e5file import META, E5Vocab

_SPACES = re.compile(" +")
_WORD = re.compile(META + "[^" + META + "]*")


class UnigramTokenizer:
    """Text → piece ids of the shipped encoder's vocabulary (no ``<s>``/``</s>``).

    Thread-safe: the word cache is guarded by a lock; everything else is read-only.
    """

    def __init__(self, vocab: E5Vocab, cache_words: int = 200_000) -> None:
        self.unk = vocab.unk
        pieces = {p: i for i, p in enumerate(vocab.pieces)
                  if i not in (vocab.bos, vocab.eos, vocab.pad, vocab.unk) and p}
        # every proper prefix of a piece maps to -1, so a Viterbi step stops extending a
        # candidate as soon as no piece can start with it (most words: a few lookups a char)
        self._ids: dict[str, int] = {p[:k]: -1 for p in pieces for k in range(1, len(p))}
        self._ids.update(pieces)
        self._scores = vocab.scores.tolist()
        self._unk_score = float(vocab.scores.min()) - 10.0
        self._max_len = max(len(p) for p in self._ids)
        self._table = str.maketrans(vocab.normalise)  # type: ignore[arg-type]
        self._cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._cache_words = cache_words
        self._lock = threading.Lock()

    def words(self, text: str) -> list[str]:
        """The normalised words of ``text``, each with its leading metaspace (as the engine
        does: one space is prepended unless there is one, runs of spaces count as one, and a
        trailing space is a word of its own)."""
        norm = _SPACES.sub(" ", text.translate(self._table))
        if not norm.startswith(" "):
            norm = " " + norm
        return _WORD.findall(norm.replace(" ", META))

    def encode(self, text: str) -> list[int]:
        """Piece ids of ``text`` in order."""
        out: list[int] = []
        for w in self.words(text):
            out.extend(self.encode_word(w))
        return out

    def encode_word(self, word: str) -> tuple[int, ...]:
        """Piece ids of one metaspace-prefixed word (memoised)."""
        with self._lock:
            hit = self._cache.get(word)
            if hit is not None:
                self._cache.move_to_end(word)
                return hit
        ids = self._viterbi(word)
        with self._lock:
            self._cache[word] = ids
            if len(self._cache) > self._cache_words:
                self._cache.popitem(last=False)
        return ids

    def _viterbi(self, word: str) -> tuple[int, ...]:
        n, ids, scores = len(word), self._ids, self._scores
        best = [0.0] + [-1e30] * n
        back: list[tuple[int, int]] = [(0, -1)] * (n + 1)
        for i in range(n):
            b = best[i]
            if b <= -1e29:
                continue
            for e in range(i + 1, min(n, i + self._max_len) + 1):
                idx = ids.get(word[i:e])
                if idx is None:
                    break
                if idx >= 0 and b + scores[idx] > best[e]:
                    best[e], back[e] = b + scores[idx], (i, idx)
            if b + self._unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = b + self._unk_score, (i, self.unk)
        out: list[int] = []
        e = n
        while e > 0:
            s, idx = back[e]
            out.append(idx)
            e = s
        return tuple(reversed(out))
