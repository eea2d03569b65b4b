"""Why does a network not train? Checks that answer it in plain words.

A run that fails to converge has few usual causes, each with a signature
that can be measured before or during training:

- a gradient bug: backpropagation disagrees with finite differences;
- an initial scale too large: the loss starts far above ln(K) and
  activations grow layer after layer; too small: they shrink to nothing;
- dead units: ReLUs that output zero for every input pass no gradient;
- a learning rate too high: one step changes the weights by a large
  fraction of themselves (update-to-weight ratio far above ~1e-3), the loss
  explodes; too low: the ratio is tiny and nothing moves;
- a network that cannot even learn 20 images has one of the above (`memorise`; one
  that learns them but too slowly to memorise them all is only slow, or small).

`health.health_checks` runs them all (`Verdict.of` sums them up) on a configured network
and a few real images; `monitor.LayerMonitor` records the per-layer statistics during
training; both measure with `statistics`, whose results are typed (`NetworkStats` of
`LayerStats`), and say what they found as `Check`s of a `Status`. After training,
`trajectory.diagnose_training` reads what happened from the logged series: divergence,
units dying, gradients vanishing, overfitting, a plateau at chance, and whether it converged.

Beside the checks, instruments of how training went: the loss along the line between
two weight settings (`interpolation`), on a plane through the trained weights along
filter-normalised directions (`landscape`), the gradient noise scale measured from each
step's halves (`noise_scale.NoiseScaleMonitor`), and the sharpness, the top eigenvalue of
the loss's Hessian, beside the threshold the optimiser's rate sets (`sharpness`).
"""


from cnn.diagnostics.health import (
    check_activations,
    check_dead_units,
    check_gradients,
    check_initial_loss,
    check_update_ratio,
    first_step_ratios,
    health_checks,
)
from cnn.diagnostics.memorise import blind_loss, check_overfit
from cnn.diagnostics.monitor import LayerMonitor
from cnn.diagnostics.statistics import (
    LayerStats,
    NetworkStats,
    layer_statistics,
    update_ratios,
    weights,
)
from cnn.diagnostics.trajectory import (
    CONVERGENCE_RULE,
    Cause,
    Finding,
    RunEnd,
    TrainingDiagnosis,
    diagnose_training,
)
from cnn.diagnostics.verdict import FAIL, PASS, WARN, Check, Status, Verdict, health_report, verdict

__all__ = [
    "CONVERGENCE_RULE",
    "FAIL",
    "PASS",
    "WARN",
    "Cause",
    "Check",
    "Finding",
    "LayerMonitor",
    "LayerStats",
    "NetworkStats",
    "RunEnd",
    "Status",
    "TrainingDiagnosis",
    "Verdict",
    "blind_loss",
    "check_activations",
    "check_dead_units",
    "check_gradients",
    "check_initial_loss",
    "check_overfit",
    "check_update_ratio",
    "diagnose_training",
    "first_step_ratios",
    "health_checks",
    "health_report",
    "layer_statistics",
    "update_ratios",
    "verdict",
    "weights",
]
