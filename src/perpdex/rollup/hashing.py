"""Hash backends of the rollup's commitments: StarkWare's Pedersen (fast-stark-crypto, or StarkWare's C++ through
crypto-cpp-py), Poseidon (StarkWare's Hades permutation, pure Python) and BLAKE2s; all map two field elements to one.

Field elements are integers in [0, STARK_PRIME). Every backend is a 2-to-1 compression `hash2(left, right)`; longer
inputs go through `hash_chain` (StarkEx position hashes are such chains: position/hash.cairo). Backends count their
calls, so a caller can report "nodes rehashed" from the hash function itself rather than from its own bookkeeping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol

STARK_PRIME = 2**251 + 17 * 2**192 + 1  # the STARK field (cairo-lang DEFAULT_PRIME)
FELT_BOUND = STARK_PRIME
MASK_250 = 2**250 - 1


class HashBackendError(ValueError):
    """An input is not a field element, or a backend's library is missing."""


def check_felt(value: int, what: str = "value") -> int:
    if type(value) is not int or not 0 <= value < STARK_PRIME:
        raise HashBackendError(f"{what} must be a field element in [0, STARK_PRIME), got {value!r}")
    return value


class HashBackend(Protocol):
    """A 2-to-1 hash over the STARK field. `calls` counts hash2 invocations since creation (or `reset_calls`)."""

    name: str
    calls: int

    def hash2(self, left: int, right: int) -> int: ...

    def reset_calls(self) -> None: ...


class _Counting:
    name = "?"
    parallel: str | None = None  # how perpdex.rollup.parallel spreads this hash: "threads", "processes" or None

    def __init__(self) -> None:
        self.calls = 0

    def reset_calls(self) -> None:
        self.calls = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(calls={self.calls})"


class PedersenBackend(_Counting):
    """StarkWare's Pedersen hash (the StarkEx position and order hash) via `fast-stark-crypto` (Rust).
    Cross-checked in tests against StarkWare's C++ (`PedersenCppBackend`) and StarkWare's published vectors."""

    name = "pedersen"
    parallel = "threads"  # the Rust call releases the GIL: 1.72x on two threads (perpdex.rollup.parallel)

    def __init__(self) -> None:
        super().__init__()
        try:
            from fast_stark_crypto import rs_compute_pedersen_hash
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise HashBackendError("the pedersen backend needs the fast-stark-crypto package") from exc
        self._hash = rs_compute_pedersen_hash

    def hash2(self, left: int, right: int) -> int:
        self.calls += 1
        # fast_stark_crypto.pedersen_hash does this same conversion; inlined to skip a Python frame
        return int(self._hash(hex(left), hex(right)))


class PedersenCppBackend(_Counting):
    """StarkWare's own C++ Pedersen (crypto-cpp, through `crypto-cpp-py`): the reference implementation.
    Slower than `PedersenBackend`; used to cross-check it, not in the hot path."""

    name = "pedersen-cpp"
    parallel = "threads"  # a ctypes call, which releases the GIL

    def __init__(self) -> None:
        super().__init__()
        try:
            from crypto_cpp_py.cpp_bindings import cpp_hash  # type: ignore[import-untyped]
        except ImportError as exc:
            raise HashBackendError("the pedersen-cpp backend needs the crypto-cpp-py package") from exc
        self._hash = cpp_hash

    def hash2(self, left: int, right: int) -> int:
        self.calls += 1
        return self._hash(left, right)


# --- Poseidon: StarkWare's Hades permutation (width 3, 8 full + 83 partial rounds, x^3) ---------------
POSEIDON_FULL_ROUNDS = 8
POSEIDON_PARTIAL_ROUNDS = 83


def _poseidon_round_constants() -> tuple[int, ...]:
    """cairo-lang poseidon_utils.generate_round_constant("Hades", p, i) = sha256("Hades" + str(i)) mod p, for
    i < 3 x (8 + 83); the MDS matrix is [[3, 1, 1], [1, -1, 1], [1, 1, -2]]."""
    count = 3 * (POSEIDON_FULL_ROUNDS + POSEIDON_PARTIAL_ROUNDS)
    return tuple(int(hashlib.sha256(f"Hades{i}".encode()).hexdigest(), 16) % STARK_PRIME for i in range(count))


_RC = _poseidon_round_constants()
_HALF_FULL = POSEIDON_FULL_ROUNDS // 2
_FIRST_FULL = tuple(_RC[3 * r: 3 * r + 3] for r in range(_HALF_FULL))
_PARTIAL = tuple(_RC[3 * r: 3 * r + 3] for r in range(_HALF_FULL, _HALF_FULL + POSEIDON_PARTIAL_ROUNDS))
_LAST_FULL = tuple(_RC[3 * r: 3 * r + 3] for r in range(_HALF_FULL + POSEIDON_PARTIAL_ROUNDS,
                                                         POSEIDON_FULL_ROUNDS + POSEIDON_PARTIAL_ROUNDS))


def hades_permutation(s0: int, s1: int, s2: int) -> tuple[int, int, int]:
    """StarkWare's Hades permutation of three field elements (the Starknet Poseidon).

    Each round adds its three constants, cubes every element (full rounds) or the last one only (partial
    rounds), then multiplies by the MDS matrix: t = s0 + s1 + s2; (t + 2 s0, t - 2 s1, t - 3 s2). Reductions
    mod p are deferred where a sum stays small; the result is reduced. Checked against StarkWare's published
    vector hades([0, 0, 0]) (tests/rollup/test_hashing.py).
    """
    p = STARK_PRIME
    for c0, c1, c2 in _FIRST_FULL:
        s0 = pow(s0 + c0, 3, p)
        s1 = pow(s1 + c1, 3, p)
        s2 = pow(s2 + c2, 3, p)
        t = s0 + s1 + s2
        s0, s1, s2 = t + 2 * s0, t - 2 * s1, t - 3 * s2
    for c0, c1, c2 in _PARTIAL:
        s2 = pow(s2 + c2, 3, p)
        s0 = (s0 + c0) % p
        s1 = (s1 + c1) % p
        t = s0 + s1 + s2
        s0, s1, s2 = t + 2 * s0, t - 2 * s1, t - 3 * s2
    for c0, c1, c2 in _LAST_FULL:
        s0 = pow(s0 + c0, 3, p)
        s1 = pow(s1 + c1, 3, p)
        s2 = pow(s2 + c2, 3, p)
        t = s0 + s1 + s2
        s0, s1, s2 = t + 2 * s0, t - 2 * s1, t - 3 * s2
    return s0 % p, s1 % p, s2 % p


class PoseidonBackend(_Counting):
    """Starknet's Poseidon hash of two elements: hades(x, y, 2)[0] (cairo-lang poseidon_hash.poseidon_hash).
    Pure Python here: no package the project may use ships it (fast-stark-crypto 0.5 has Pedersen only)."""

    name = "poseidon"
    parallel = "processes"  # pure Python: only separate processes run it on two cores

    def hash2(self, left: int, right: int) -> int:
        self.calls += 1
        return hades_permutation(left, right, 2)[0]


class Blake2sBackend(_Counting):
    """BLAKE2s-256 of the two elements as 32-byte big-endian words, truncated to 250 bits so the result is a
    field element. Not StarkEx-compatible; the fast option for large simulations."""

    name = "blake2s"

    def __init__(self) -> None:
        super().__init__()
        self._blake2s = hashlib.blake2s

    def hash2(self, left: int, right: int) -> int:
        self.calls += 1
        digest = self._blake2s(left.to_bytes(32, "big") + right.to_bytes(32, "big")).digest()
        return int.from_bytes(digest, "big") & MASK_250


BACKENDS: dict[str, type] = {
    "pedersen": PedersenBackend,
    "pedersen-cpp": PedersenCppBackend,
    "poseidon": PoseidonBackend,
    "blake2s": Blake2sBackend,
}
DEFAULT_BACKEND = "pedersen"


def make_backend(name: str = DEFAULT_BACKEND) -> HashBackend:
    """A fresh backend (its own call counter) by name: pedersen, pedersen-cpp, poseidon or blake2s."""
    cls = BACKENDS.get(name)
    if cls is None:
        raise HashBackendError(f"unknown hash backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return cls()


def hash_chain(backend: HashBackend, elements: Iterable[int], start: int = 0) -> int:
    """h(...h(h(start, e0), e1)..., en): the StarkEx way of hashing a list (position/hash.cairo)."""
    result = start
    hash2 = backend.hash2
    for element in elements:
        result = hash2(result, element)
    return result


def bytes_to_felt(data: bytes) -> int:
    """A field element from arbitrary bytes: BLAKE2s-256 truncated to 250 bits (for names and keys)."""
    return int.from_bytes(hashlib.blake2s(data).digest(), "big") & MASK_250
