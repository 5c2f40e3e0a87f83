"""The equivariance constraint's nullspace: a basis of the linear maps that commute with a group.

A linear map $W: \\rho_{in} \\to \\rho_{out}$ is equivariant iff
$\\rho_{out}(h) W \\rho_{in}(h)^{-1} = W$ for every discrete generator $h$ and
$d\\rho_{out}(A) W - W d\\rho_{in}(A) = 0$ for every Lie-algebra generator $A$ (Finzi,
Welling & Wilson 2021, Sec. 4, eqs. (4)-(5)): $W$ is an invariant vector of
$\\rho_{out} \\otimes \\rho_{in}^*$. On $\\mathrm{vec}(W)$ (row-major) these are the linear
constraints $C\\,\\mathrm{vec}(W) = 0$ with blocks
$\\rho_{out}(h) \\otimes \\rho_{in}(h)^{-\\top} - I$ and
$d\\rho_{out}(A) \\otimes I - I \\otimes d\\rho_{in}(A)^\\top$.
"""

import functools
import warnings

import numpy as np
import scipy.sparse.linalg

from ._reps import AbstractRep

# Constraint systems up to this many unknowns are solved densely (SVD); above, matrix-free.
_DENSE_LIMIT = 1024
_RTOL = 1e-10


def _constraint_blocks(rep_in: AbstractRep, rep_out: AbstractRep):
    """[(A_out, B_in)]: each constraint is vec(A_out W - W B_in) = 0, i.e. the operator
    W -> A_out W - W B_in, kept factored (never the Kronecker product) for the matrix-free path."""
    group = rep_in.group
    blocks = []
    for h in group.discrete_generators:
        # rho_out(h) W rho_in(h)^{-1} - W = 0  <=>  rho_out(h) W - W rho_in(h) = 0
        blocks.append((rep_out.rho(h), rep_in.rho(h)))
    for a in group.lie_algebra:
        blocks.append((rep_out.drho(a), rep_in.drho(a)))
    return [(np.asarray(a, np.float64), np.asarray(b, np.float64)) for a, b in blocks]


def _dense_nullspace(blocks, n_out, n_in):
    # The eigenvectors of C^T C with eigenvalues ~0: one n x n `eigh` rather than the SVD of
    # the (#generators n) x n stack (10x faster for O(5) 2-tensors). Squaring costs nothing
    # here: the nullspace is separated from the rest of the spectrum by an O(1) gap, so its
    # eigenvectors are accurate to rounding (Davis-Kahan), and the residual is checked.
    eye_out, eye_in = np.eye(n_out), np.eye(n_in)
    m = 0
    for a, b in blocks:
        c = np.kron(a, eye_in) - np.kron(eye_out, b.T)
        m = m + c.T @ c
    vals, vecs = np.linalg.eigh(m)
    scale = max(vals[-1], 1.0)
    return vecs[:, vals < _RTOL * scale]


def _krylov_nullspace(blocks, n_out, n_in):
    # The eigenvectors of C^T C with eigenvalue 0, by block LOBPCG (Knyazev 2001; scipy's
    # `lobpcg`) on the operator applied in factored form: O(n_out n_in (n_out + n_in)) per
    # product, never the n x n matrix. A block method, because the nullspace is one highly
    # degenerate eigenvalue, which a single-vector Lanczos (ARPACK) resolves only by luck. The
    # block is doubled until it holds a vector outside the nullspace.
    n = n_out * n_in

    def c_t_c(v):
        w = v.reshape(n_out, n_in, -1)
        total = np.zeros_like(w)
        for a, b in blocks:
            r = np.einsum("ij,jkl->ikl", a, w) - np.einsum("ijl,jk->ikl", w, b)
            total += np.einsum("ji,jkl->ikl", a, r) - np.einsum("ijl,kj->ikl", r, b)
        return total.reshape(n, -1)

    # (scipy's stubs type the abstract base's `__init__`; `__new__` builds the custom operator)
    op = scipy.sparse.linalg.LinearOperator(  # pyright: ignore[reportCallIssue]
        (n, n),
        matmat=c_t_c,  # pyright: ignore[reportCallIssue]
        matvec=c_t_c,  # pyright: ignore[reportCallIssue]
        dtype=np.float64,  # pyright: ignore[reportCallIssue]
    )
    # (floored at 1, as in the dense path: all-zero constraints, e.g. between scalars of a
    # connected group, make every vector a solution, not none)
    scale = max(sum(np.linalg.norm(a, 2) ** 2 + np.linalg.norm(b, 2) ** 2 for a, b in blocks), 1.0)
    rng = np.random.default_rng(0)
    k = 8
    while True:
        k = min(k, n // 5)
        x0 = rng.standard_normal((n, k))
        with warnings.catch_warnings():  # it reports its final accuracy; we check it below
            warnings.simplefilter("ignore", UserWarning)
            vals, vecs = scipy.sparse.linalg.lobpcg(
                op, x0, largest=False, tol=1e-11 * scale, maxiter=500
            )
        null = np.abs(vals) < _RTOL * scale
        if not null.all() or k >= n // 5:
            if null.all():
                raise ValueError(
                    f"the equivariant basis has more than n/5 = {n // 5} elements; use "
                    "method='dense'."
                )
            basis = np.linalg.qr(vecs[:, null])[0]
            residual = np.abs(c_t_c(basis)).max() if basis.size else 0.0
            if residual > 1e-9 * scale:
                raise RuntimeError(
                    f"the matrix-free basis solve did not converge (residual {residual:.1e}); "
                    "use method='dense'."
                )
            return basis
        k *= 2


@functools.lru_cache(maxsize=512)
def _basis(rep_in: AbstractRep, rep_out: AbstractRep, method: str) -> np.ndarray:
    n_out, n_in = rep_out.size, rep_in.size
    blocks = _constraint_blocks(rep_in, rep_out)
    if method == "auto":
        method = "dense" if n_out * n_in <= _DENSE_LIMIT else "krylov"
    solve = _dense_nullspace if method == "dense" else _krylov_nullspace
    q = solve(blocks, n_out, n_in)
    q = q.reshape(n_out, n_in, -1)
    q.setflags(write=False)
    return q


def equivariant_basis(
    rep_in: AbstractRep, rep_out: AbstractRep, method: str = "auto"
) -> np.ndarray:
    """An orthonormal basis $\\{B_k\\}$ of the equivariant linear maps $\\rho_{in} \\to
    \\rho_{out}$, as an array `(rep_out.size, rep_in.size, r)` (float64, numpy).

    Solved for the whole pair: dense SVD of the stacked constraints for up to 1024 unknowns,
    otherwise matrix-free (the operator $C^\\top C$ in factored form, block LOBPCG via
    `scipy.sparse.linalg.lobpcg`, in the spirit of EMLP's Krylov solver). The result is cached
    per (rep_in, rep_out, method): representations are static, hashable data, so this is a
    pure function of its arguments. `EquivariantLinear` calls it per pair of components, so
    large direct sums cost only their distinct blocks.

    **Arguments:**

    - `rep_in`: the input representation.
    - `rep_out`: the output representation, of the same group.
    - `method`: `"auto"` (dense up to 1024 unknowns), `"dense"` or `"krylov"` (block LOBPCG;
        for a basis of at most n/5 elements, n the number of unknowns).

    **Returns:** a read-only float64 NumPy array `(rep_out.size, rep_in.size, r)` whose `r`
    slices are orthonormal (in the Frobenius inner product) equivariant maps.

    **Raises:** `ValueError` for representations of different groups, an unknown `method`, or
    (`"krylov"`) a basis of more than n/5 elements; `RuntimeError` when the matrix-free solve
    does not converge.

    Reference: Finzi, Welling & Wilson, "A Practical Method for Constructing Equivariant
    Multilayer Perceptrons of Arbitrary Matrix Groups", ICML 2021, Sec. 4, eqs. (4)-(5);
    Knyazev, "Toward the optimal preconditioned eigensolver: LOBPCG", SIAM J. Sci. Comput. 2001.

    **Example:**

    ```pycon
    >>> import jax, numpy as np
    >>> import structjax.equivariant as se
    >>> G = se.SO(3)
    >>> Q = se.equivariant_basis(se.V(G), se.V(G))  # only multiples of the identity
    >>> g = np.asarray(G.sample(jax.random.key(0)))
    >>> W = Q[..., 0]
    >>> print(Q.shape, bool(np.abs(g @ W - W @ g).max() < 1e-10))
    (3, 3, 1) True

    ```
    """
    if rep_in.group != rep_out.group:
        raise ValueError(
            f"`equivariant_basis`: representations of different groups "
            f"({rep_in.group.name}, {rep_out.group.name})."
        )
    if method not in ("auto", "dense", "krylov"):
        raise ValueError(f"`method={method!r}` must be 'auto', 'dense' or 'krylov'.")
    return _basis(rep_in, rep_out, method)
