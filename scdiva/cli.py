"""The ``scdiva`` command line: ``train``, ``embed``, ``annotate``, ``integrate``, ``info``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPILOG = "Checkpoints are directories with config.json, model.safetensors and vocab.json (see `scdiva info`)."


def _read_h5ad(path: str, backed: bool = False):
    import anndata as ad

    if not Path(path).is_file():
        raise ValueError(f"input file {path} does not exist")
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as err:  # h5py / anndata raise many types for files that are not (intact) .h5ad
        raise ValueError(f"input file {path} is not a readable AnnData .h5ad file ({type(err).__name__}: "
                         f"{_first_line(err)}); write it with anndata (`adata.write_h5ad(path)`) or, if a "
                         "copy was interrupted, copy it again") from None


def _message(err: BaseException) -> str:
    """An exception's message (a KeyError's without the quotes its str() adds)."""
    return str(err.args[0] if isinstance(err, KeyError) and err.args else err)


def _first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (a library's can span several)."""
    return next((line.strip() for line in _message(err).splitlines() if line.strip()), type(err).__name__)


def _write_h5ad(adata, path: str) -> None:
    """Write to a temporary file, then rename: an interrupted write leaves no complete-looking file."""
    import os

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    adata.write_h5ad(tmp)
    os.replace(tmp, out)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def cmd_train(args: argparse.Namespace) -> None:
    from scdiva import ScDiVaModel, TaskSpec
    from scdiva.data.vocab import union_of_genes
    from scdiva.train.distributed import shutdown_distributed

    adatas = [_read_h5ad(path) for path in args.data]
    tasks: list = list(args.tasks)
    for spec in args.classifier or []:
        name, _, obs_key = spec.partition("=")
        if not obs_key:
            raise ValueError(f"--classifier expects NAME=OBS_KEY, got {spec!r}")
        tasks.append(TaskSpec(name, kind="classifier", obs_key=obs_key))
    if args.init:
        model = ScDiVaModel.from_pretrained(args.init, device=args.device)
    else:
        overrides = json.loads(args.config) if args.config else {}
        names = [a.var_names if args.gene_column is None else a.var[args.gene_column] for a in adatas]
        genes = union_of_genes(names)
        model = ScDiVaModel.from_config(args.size, genes=genes, device=args.device, seed=args.seed, **overrides)
    history = model.fit(adatas if len(adatas) > 1 else adatas[0], tasks=tasks, batch_key=args.batch_key,
                        label_key=args.label_key, max_steps=args.max_steps, max_epochs=args.max_epochs,
                        batch_size=args.batch_size, lr=args.lr, seed=args.seed, checkpoint_dir=args.checkpoint_dir,
                        resume=args.resume, layer=args.layer, gene_column=args.gene_column,
                        min_coverage=args.min_coverage, data_name=[Path(p).stem for p in args.data],
                        protein_obsm_key=args.protein_obsm_key, kl_weight=args.kl_weight)
    model.save_pretrained(args.output)
    if args.history:
        Path(args.history).write_text(json.dumps(history, indent=1) + "\n")
    print(f"trained {len(history)} steps, final loss {history[-1]['loss']:.4f}; wrote {args.output}")
    shutdown_distributed()


def _inference(args: argparse.Namespace):
    from scdiva import ScDiVaInference

    return ScDiVaInference(model_name=args.model, device=args.device, batch_size=args.batch_size,
                           layer=args.layer, gene_column=args.gene_column, min_coverage=args.min_coverage,
                           progress_bar=True)


def cmd_embed(args: argparse.Namespace) -> None:
    adata = _read_h5ad(args.input)
    _inference(args).embed(adata, key_added=args.key, protein_obsm_key=args.protein_obsm_key)
    _write_h5ad(adata, args.output)
    print(f"wrote obsm[{args.key!r}] ({adata.obsm[args.key].shape[1]} dims) for {adata.n_obs:,} cells to {args.output}")


def cmd_annotate(args: argparse.Namespace) -> None:
    adata = _read_h5ad(args.input)
    _inference(args).annotate(adata, task=args.task)
    _write_h5ad(adata, args.output)
    print(f"wrote obs['scdiva_prediction'] and obs['scdiva_confidence'] for {adata.n_obs:,} cells to {args.output}")


def cmd_integrate(args: argparse.Namespace) -> None:
    adatas = [_read_h5ad(p) for p in args.inputs]
    names = [Path(p).stem for p in args.inputs]
    result = _inference(args).integrate_batches(adatas, batch_key=args.batch_key, batch_names=names,
                                                max_steps=args.max_steps, seed=args.seed)
    _write_h5ad(result, args.output)
    print(f"wrote {result.n_obs:,} cells with a batch-corrected obsm['X_scdiva'] to {args.output}")


def cmd_info(args: argparse.Namespace) -> None:
    import torch

    from scdiva.config import NAMED_SIZES, ScDiVaConfig

    if args.model is None:
        print("named sizes (parameters counted on the meta device with each size's vocabulary hint):")
        from scdiva.module import ScDiVaModule

        for size in NAMED_SIZES:
            config = ScDiVaConfig.from_size(size)
            with torch.device("meta"):
                n = sum(p.numel() for p in ScDiVaModule(config).parameters())
            print(f"  {size:6s} d_model={config.d_model:5d} layers={config.n_layers:3d} heads={config.n_heads:3d} "
                  f"genes={config.n_genes:6,d} latent={config.n_latent:4d} parameters={n / 1e6:9.1f}M")
        return
    from scdiva import ScDiVaModel

    model = ScDiVaModel.from_pretrained(args.model, device="cpu")
    print(model)
    print(json.dumps({k: v for k, v in model.config.to_dict().items() if k != "tasks"}, indent=2))
    for task in model.config.tasks:
        print(f"task {task['name']!r}: {task['kind']} on obs[{task['obs_key']!r}], {len(task['categories'])} classes")


def _common(parser: argparse.ArgumentParser, with_model: bool = True) -> None:
    if with_model:
        parser.add_argument("--model", required=True, help="checkpoint directory or Hugging Face repo id")
    parser.add_argument("--layer", default="auto",
                        help="layer with raw integer counts (default: 'counts' if present, else X; 'X' for X)")
    parser.add_argument("--gene-column", default=None, help="var column with gene ids (default: var_names)")
    parser.add_argument("--min-coverage", type=float, default=0.5,
                        help="fail if fewer of the vocabulary genes are in the data (default 0.5)")
    parser.add_argument("--batch-size", type=int, default=256 if with_model else 64)
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scdiva", description="ScDiVa: a variational transformer for "
                                     "single-cell data (AnnData .h5ad in, .h5ad out).", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train (or fine-tune) a model and save a checkpoint",
                       description="Train a fresh model of a named size (or fine-tune --init) on an .h5ad "
                       "with raw counts, then save it. Pretraining: --tasks masked_expression integration "
                       "--batch-key B; annotation: --tasks annotation --label-key L.", epilog=EPILOG)
    p.add_argument("--data", required=True, nargs="+",
                   help="training .h5ad file(s) (raw integer counts in X or --layer); several files are one "
                   "corpus whose vocabulary is the union of their genes")
    p.add_argument("--output", required=True, help="checkpoint directory to write")
    p.add_argument("--size", default="tiny", help="named size: tiny, small, base, large (default tiny)")
    p.add_argument("--config", default=None, help='JSON of config overrides, e.g. \'{"n_latent": 32}\'')
    p.add_argument("--init", default=None, help="start from this checkpoint instead of a fresh model")
    p.add_argument("--tasks", nargs="+", default=["masked_expression", "integration"],
                   help="masked_expression, integration, annotation (default: the first two)")
    p.add_argument("--classifier", action="append", metavar="NAME=OBS_KEY",
                   help="extra classifier task on an obs column (repeatable)")
    p.add_argument("--batch-key", default=None, help="obs column with the batch (for integration)")
    p.add_argument("--label-key", default=None, help="obs column with cell-type labels (for annotation)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-epochs", type=int, default=None,
                   help="default: scVI's heuristic, min(round(20,000 / cells * 400), 400), if --max-steps is not given")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--kl-weight", type=float, default=None,
                   help="weight of the ELBO's KL term from this run on, kept in the checkpoint (default: the "
                        "model's, 1 for a fresh one; the integration fine-tune recipe uses 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-dir", default=None, help="write resumable checkpoints here during training")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    p.add_argument("--history", default=None, help="write the loss history (JSON) here")
    p.add_argument("--protein-obsm-key", default=None,
                   help="obsm key with raw surface-protein counts (CITE-seq): learn the protein modality too")
    _common(p, with_model=False)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("embed", help="write the latent to obsm['X_scdiva']", epilog=EPILOG)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--key", default="X_scdiva", help="obsm key (default X_scdiva)")
    p.add_argument("--protein-obsm-key", default=None,
                   help="obsm key with the cells' protein counts, for the joint RNA + protein latent")
    _common(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("annotate", help="predict cell types into obs['scdiva_prediction'/'scdiva_confidence']",
                       epilog=EPILOG)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--task", default="annotation", help="classifier task to use (default annotation)")
    _common(p)
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("integrate", help="integrate several .h5ad files into one batch-corrected embedding",
                       description="Each input file is a batch (or use --batch-key); gene sets may differ.",
                       epilog=EPILOG)
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--batch-key", default=None, help="obs column with the batch (default: one batch per file)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="cap on the integration fine-tune's steps (default: scVI's epoch budget, early-stopped "
                        "on held-out cells; 0: no fine-tune)")
    p.add_argument("--seed", type=int, default=0)
    _common(p)
    p.set_defaults(func=cmd_integrate)

    p = sub.add_parser("info", help="describe a checkpoint, or list the named sizes", epilog=EPILOG)
    p.add_argument("--model", default=None, help="checkpoint directory or repo id (default: list sizes)")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "layer", None) == "X":
        args.layer = None
    _set_threads(getattr(args, "threads", None))
    from scdiva.config import ConfigError
    from scdiva.data.dataset import CountsError
    from scdiva.data.vocab import GeneMismatchError
    from scdiva.errors import CheckpointError

    try:
        args.func(args)
    except (ConfigError, CountsError, GeneMismatchError, CheckpointError, KeyError, ValueError) as err:
        # One line, no traceback: the package's errors name the file or key and the fix.
        print(f"scdiva {args.command}: error: {' '.join(_message(err).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
