"""The built-in integration methods as records (the catalog collects them)."""

from __future__ import annotations

from scdiva.bench.methods.record import MethodRecord
from scdiva.bench.methods.scdiva import SCDIVA_FINETUNED_DEFAULTS, SCDIVA_ZEROSHOT_DEFAULTS
from scdiva.bench.tasks.integration.bbknn import BBKNN_DEFAULTS
from scdiva.bench.tasks.integration.controls import BATCH_DEFAULTS, CELLTYPE_DEFAULTS, RANDOM_DEFAULTS
from scdiva.bench.tasks.integration.harmony import HARMONY_DEFAULTS
from scdiva.bench.tasks.integration.scanorama import SCANORAMA_DEFAULTS
from scdiva.bench.tasks.integration.scanvi_model import SCANVI_DEFAULTS
from scdiva.bench.tasks.integration.scvi_model import SCVI_DEFAULTS
from scdiva.bench.tasks.integration.unintegrated import UNINTEGRATED_DEFAULTS

_HERE = "scdiva.bench.tasks.integration"
_SCDIVA = "scdiva.bench.methods.scdiva"


def builtin_records() -> list[MethodRecord]:
    """The integration methods the workflow knows by name, in the order tables list them."""
    return [
        MethodRecord("unintegrated", "integration", f"{_HERE}.unintegrated:run_unintegrated", UNINTEGRATED_DEFAULTS,
                     role="control", description="PCA of the preprocessed data (no integration)"),
        MethodRecord("control_random", "integration", f"{_HERE}.controls:run_control_random", RANDOM_DEFAULTS,
                     role="control", control="negative", description="negative control: random coordinates"),
        MethodRecord("control_batch", "integration", f"{_HERE}.controls:run_control_batch", BATCH_DEFAULTS,
                     role="control", control="negative",
                     description="negative control: the batch one-hot plus noise"),
        MethodRecord("control_celltype", "integration", f"{_HERE}.controls:run_control_celltype",
                     CELLTYPE_DEFAULTS, role="control", control="positive", needs_labels=True,
                     description="positive control: the cell-type one-hot plus noise"),
        MethodRecord("harmony", "integration", f"{_HERE}.harmony:run_harmony", HARMONY_DEFAULTS),
        MethodRecord("bbknn", "integration", f"{_HERE}.bbknn:run_bbknn", BBKNN_DEFAULTS, output="graph",
                     description="batch-balanced neighbour graph of the PCA (scored on the graph metrics)"),
        MethodRecord("scanorama", "integration", f"{_HERE}.scanorama:run_scanorama", SCANORAMA_DEFAULTS),
        MethodRecord("scvi", "integration", f"{_HERE}.scvi_model:run_scvi", SCVI_DEFAULTS, gpu=True,
                     saves_model=True),
        MethodRecord("scanvi", "integration", f"{_HERE}.scanvi_model:run_scanvi", SCANVI_DEFAULTS, gpu=True,
                     needs_labels=True, reuses_model_of="scvi",
                     model_compatible=f"{_HERE}.scanvi_model:shares_scvi_model"),
        MethodRecord("scdiva_finetuned", "integration", f"{_SCDIVA}:run_scdiva_finetuned",
                     SCDIVA_FINETUNED_DEFAULTS, gpu=True, role="model", checkpoint_param="checkpoint",
                     streams_from=f"{_SCDIVA}:run_scdiva_finetuned_streamed"),
        MethodRecord("scdiva_zeroshot", "integration", f"{_SCDIVA}:run_scdiva_zeroshot", SCDIVA_ZEROSHOT_DEFAULTS,
                     gpu=True, role="model", checkpoint_param="checkpoint",
                     streams_from=f"{_SCDIVA}:run_scdiva_zeroshot_streamed"),
    ]
