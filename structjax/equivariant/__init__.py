"""Groups, representations, and equivariant kernels and layers."""

from .._groups import (
    SE as SE,
    SO as SO,
    C as C,
    D as D,
    E as E,
    Group as Group,
    Lorentz as Lorentz,
    LorentzGroup as LorentzGroup,
    O as O,
    S as S,
    Sp as Sp,
)
from ._basis import equivariant_basis as equivariant_basis
from ._egnn import EGNN as EGNN, EGNNLayer as EGNNLayer, euclidean_action as euclidean_action
from ._emlp import (
    EMLP as EMLP,
    EquivariantLinear as EquivariantLinear,
    GatedNonlinearity as GatedNonlinearity,
    PairwiseProducts as PairwiseProducts,
    gated as gated,
    uniform_rep as uniform_rep,
)
from ._fields import FieldType as FieldType
from ._gconv import (
    GlobalPool as GlobalPool,
    GroupConv as GroupConv,
    GroupPool as GroupPool,
    LiftingConv as LiftingConv,
    group_elements as group_elements,
    rotate_group_features as rotate_group_features,
    rotate_image as rotate_image,
)
from ._reps import (
    AbstractRep as AbstractRep,
    DirectSum as DirectSum,
    Dual as Dual,
    Scalar as Scalar,
    T as T,
    TensorProduct as TensorProduct,
    V as V,
    Vector as Vector,
)
from ._steerable import (
    GatedFieldNonlinearity as GatedFieldNonlinearity,
    InvariantPool as InvariantPool,
    NormNonlinearity as NormNonlinearity,
    PointwiseNonlinearity as PointwiseNonlinearity,
    SteerableConv as SteerableConv,
)
from ._steerable_basis import (
    default_basis_params as default_basis_params,
    steerable_kernel_basis as steerable_kernel_basis,
)
