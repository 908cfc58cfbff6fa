"""``ScDiVaInference``: AnnData-in, AnnData-out use of a trained ScDiVa checkpoint."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from scdiva.model.scdiva_model import AUTO, ScDiVaModel

if TYPE_CHECKING:
    import anndata

EMBEDDING_KEY = "X_scdiva"
PREDICTION_KEY = "scdiva_prediction"
CONFIDENCE_KEY = "scdiva_confidence"
PROTEIN_KEY = "scdiva_protein"


class ScDiVaInference:
    """Embed, annotate and integrate AnnData with a trained ScDiVa model (like scanpy's ``tl``).

    ``model_name`` is a checkpoint directory or a Hugging Face repo id; or pass a loaded
    ``model=``. Methods write into the AnnData they get and also return it.
    """

    def __init__(self, model_name: str | os.PathLike | None = None, *, model: ScDiVaModel | None = None,
                 device: str | None = None, batch_size: int = 256, layer: str | None = AUTO,
                 gene_column: str | None = None, min_coverage: float = 0.5, progress_bar: bool = False):
        if (model_name is None) == (model is None):
            raise ValueError("give exactly one of model_name= (checkpoint directory or repo id) or model=")
        self.model = model if model is not None else ScDiVaModel.from_pretrained(model_name, device=device)
        self._options: dict[str, Any] = dict(batch_size=batch_size, layer=layer, gene_column=gene_column,
                                             min_coverage=min_coverage, progress_bar=progress_bar)

    def embed(self, adata: anndata.AnnData, key_added: str = EMBEDDING_KEY, *,
              protein_obsm_key: str | None = None) -> anndata.AnnData:
        """Write the latent mean to ``adata.obsm[key_added]`` (default ``"X_scdiva"``); with
        ``protein_obsm_key`` (a model trained with proteins) the joint RNA + protein latent."""
        adata.obsm[key_added] = self.model.get_latent(adata, protein_obsm_key=protein_obsm_key, **self._options)
        return adata

    def predict_protein(self, adata: anndata.AnnData, key_added: str = PROTEIN_KEY) -> anndata.AnnData:
        """Write the proteins predicted from RNA to ``adata.obsm[key_added]`` (a DataFrame of expected
        counts, one column per protein of the model)."""
        import pandas as pd

        values = self.model.predict_protein(adata, **self._options)
        adata.obsm[key_added] = pd.DataFrame(values, index=adata.obs_names, columns=self.model.config.protein_names)
        return adata

    def annotate(self, adata: anndata.AnnData, task: str = "annotation") -> anndata.AnnData:
        """Write ``obs["scdiva_prediction"]`` (label) and ``obs["scdiva_confidence"]`` (its probability)."""
        import pandas as pd

        labels, confidence = self.model.predict_labels(adata, task=task, **self._options)
        categories = self.model.module.heads[task].categories
        adata.obs[PREDICTION_KEY] = pd.Categorical(labels, categories=categories)
        adata.obs[CONFIDENCE_KEY] = confidence.astype(np.float32)
        return adata

    def integrate_batches(self, adatas: Sequence[anndata.AnnData], batch_key: str | None = None,
                          batch_names: Sequence[str] | None = None, max_steps: int | None = None,
                          seed: int = 0, progress_bar: bool | None = None,
                          key_added: str = EMBEDDING_KEY, **fit_settings: Any) -> anndata.AnnData:
        """One AnnData of all cells with a batch-corrected latent in ``obsm[key_added]``.

        Each AnnData is aligned to the model's vocabulary on its own, so their gene sets may
        differ. The batch of a cell is ``obs[batch_key]`` if given, else its AnnData's position
        (or ``batch_names``). The integration objective (the decoder is conditioned on these
        batches, the encoder is not) is fine-tuned on the union first, updating the loaded model in
        place, with the recipe the benchmarks measure (:meth:`ScDiVaModel.fit_integration`):
        ``max_steps=None`` trains for scVI's epoch budget, early-stopped on held-out cells; a number
        caps the steps; ``0`` uses the pretrained encoder as it is. ``fit_settings`` replace other
        settings of the recipe (``lr``, ``kl_weight``, ...). The result holds only ``obs`` (with
        ``obs["batch"]``) and the embedding, not the expression matrix.
        """
        import anndata as ad
        import pandas as pd

        if len(adatas) == 0:
            raise ValueError("integrate_batches needs at least one AnnData")
        names = list(batch_names) if batch_names is not None else [str(i) for i in range(len(adatas))]
        if len(names) != len(adatas):
            raise ValueError(f"got {len(names)} batch_names for {len(adatas)} AnnData objects")
        batch_labels = []
        for name, adata in zip(names, adatas, strict=True):
            if batch_key is not None:
                if batch_key not in adata.obs:
                    raise KeyError(f"batch_key {batch_key!r} not in obs of AnnData {name!r}")
                batch_labels.append(adata.obs[batch_key].astype(str).to_numpy())
            else:
                batch_labels.append(np.full(adata.n_obs, name, dtype=object))
        if max_steps != 0:
            self.model.fit_integration(
                adatas, batch_labels, max_steps=max_steps, seed=seed,
                progress_bar=self._options["progress_bar"] if progress_bar is None else progress_bar,
                **_without(self._options, "batch_size", "progress_bar"), **fit_settings)
        latents = [self.model.get_latent(a, **self._options) for a in adatas]
        obs = pd.concat([a.obs.assign(batch=b) for a, b in zip(adatas, batch_labels, strict=True)])
        obs.index = _unique_index([a.obs_names for a in adatas], names)
        result = ad.AnnData(obs=obs)
        result.obs["batch"] = pd.Categorical(result.obs["batch"].astype(str))
        result.obsm[key_added] = np.concatenate(latents).astype(np.float32)
        return result


def _without(options: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in keys}


def _unique_index(indices, names: Sequence[str]):
    import pandas as pd

    joined = pd.Index(np.concatenate([np.asarray(i, dtype=object) for i in indices]))
    if joined.is_unique:
        return joined
    return pd.Index(np.concatenate([[f"{n}-{c}" for c in i] for i, n in zip(indices, names, strict=True)]))
