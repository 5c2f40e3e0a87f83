"""The abstract manifold: pure-function geometry on arrays, batched over leading axes."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

# A point or tangent vector: an array of shape `batch + point_shape` (a tuple of such
# arrays for `Product`).
Point = PyTree[Float[Array, "..."]]


class AbstractManifold(eqx.Module):
    """A Riemannian manifold embedded in $\\mathbb{R}^{\\text{point\\_shape}}$.

    A point is an array whose trailing axes have shape `point_shape`; any leading axes are a
    batch, and every method maps over them. Tangent vectors are arrays of the point's shape
    (the embedded representation). Methods are pure and work under `jit`, `vmap` and `grad`.

    Every manifold implements `random_point`, `random_tangent`, `project`, `to_tangent`,
    `egrad_to_rgrad`, `retract`, `inner`, `transport` and `constraint_error`; `exp`, `log` and
    `distance` exist on the manifolds that have them in closed form.
    """

    @property
    @abc.abstractmethod
    def point_shape(self) -> tuple[int, ...]:
        """The shape of one point (the trailing axes of an array of points)."""

    @abc.abstractmethod
    def project(self, x: Point) -> Point:
        """The nearest point of the manifold (in the embedding's Euclidean norm)."""

    @abc.abstractmethod
    def to_tangent(self, x: Point, v: Point) -> Point:
        """The orthogonal projection of an ambient vector `v` onto the tangent space at `x`."""

    @abc.abstractmethod
    def egrad_to_rgrad(self, x: Point, g: Point) -> Point:
        """The Riemannian gradient at `x` from the Euclidean gradient `g` of a function on
        the embedding space."""

    @abc.abstractmethod
    def retract(self, x: Point, v: Point) -> Point:
        """A retraction $R_x(v)$: a point, with $R_x(0) = x$ and $dR_x(0) = \\mathrm{id}$."""

    @abc.abstractmethod
    def inner(self, x: Point, u: Point, v: Point) -> Point:
        """The Riemannian metric $\\langle u, v\\rangle_x$, one number per point."""

    @abc.abstractmethod
    def transport(self, x: Point, y: Point, v: Point) -> Point:
        """A vector transport of the tangent vector `v` at `x` to the tangent space at `y`."""

    @abc.abstractmethod
    def constraint_error(self, x: Point) -> Point:
        """How far `x` is from the manifold (zero on it), one number per point."""

    @abc.abstractmethod
    def random_point(self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype=None) -> Point:
        """Random points with batch shape `shape` (the array has shape
        `shape + point_shape`)."""

    def random_tangent(self, key: PRNGKeyArray, x: Point) -> Point:
        """A random tangent vector at each point of `x` (standard normal, projected)."""
        return self.to_tangent(x, jax.random.normal(key, x.shape, x.dtype))

    def norm(self, x: Point, v: Point) -> Point:
        """$\\|v\\|_x$, one number per point."""
        return jnp.sqrt(jnp.maximum(self.inner(x, v, v), 0.0))

    def check_shape(self, x, name: str = "x"):
        """Raise a `ValueError` unless the trailing axes of `x` are `point_shape`."""
        k = len(self.point_shape)
        shape = jnp.shape(x)
        if tuple(shape[len(shape) - k :]) != tuple(self.point_shape) or len(shape) < k:
            raise ValueError(
                f"{type(self).__name__} points have trailing shape {self.point_shape}, "
                f"got `{name}` of shape {shape}."
            )


def batch_inner(u, v, ndim: int):
    """$\\sum$ over the last `ndim` axes of $u v$: the Euclidean inner product per point."""
    return jnp.sum(u * v, axis=tuple(range(-ndim, 0))) if ndim else u * v


def sym(a):
    """The symmetric part of a batch of square matrices."""
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def skew(a):
    """The skew-symmetric part of a batch of square matrices."""
    return 0.5 * (a - jnp.swapaxes(a, -1, -2))


def mm(a, b):
    """`a @ b` at full precision. Manifold code keeps constraints such as $X^\\top X = I$ to
    rounding, which the default float32 matrix product of GPUs (TF32, 10-bit mantissa) and
    TPUs (bfloat16 passes) would break at 1e-3; on CPU this is the ordinary product."""
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def mT(a):
    """The transpose of the last two axes."""
    return jnp.swapaxes(a, -1, -2)


def default_dtype(dtype):
    return jnp.result_type(float) if dtype is None else dtype


def check_hyperbolic(name: str, n: int, curvature: float):
    """The shared `__check_init__` of the hyperbolic models."""
    call = f"`{name}(n={n}, curvature={curvature})`"
    if n < 1:
        raise ValueError(f"{call} needs n >= 1.")
    if not curvature < 0:
        raise ValueError(
            f"{call} needs curvature < 0 (hyperbolic space); use `Euclidean` for "
            "curvature 0 and `Sphere` for positive curvature."
        )
