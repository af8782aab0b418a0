"""What a model folder holds, read from its own files before anything loads: the embedded world's layout, or a
diffusers folder of one of the model families (`models/families.py`: SD3, Flux; else Stable Diffusion 1.x, 2.x, SDXL
base) and the files each component loads from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checks import check_config_file, weights_files

DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model",)
TRANSFORMERS_WEIGHTS = ("model", "pytorch_model")
# A component folder -> the stems of its weights files (None: a tokenizer or scheduler folder, configs only).
Components = dict[str, "tuple[str, ...] | None"]
SD_COMPONENTS: Components = {"unet": DIFFUSERS_WEIGHTS, "vae": DIFFUSERS_WEIGHTS, "text_encoder": TRANSFORMERS_WEIGHTS,
                             "tokenizer": None, "scheduler": None}
SDXL_COMPONENTS: Components = {**SD_COMPONENTS, "text_encoder_2": TRANSFORMERS_WEIGHTS, "tokenizer_2": None}
# A tokenizer folder holds the fast tokenizer's one file (what `save_pretrained` writes with transformers 5), the
# BPE pair of CLIP's slow one, or T5's sentencepiece model; each loads.
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("spiece.model",))


@dataclass(frozen=True)
class FolderInfo:
    """A checked diffusers model folder: `kind` (sd1 | sd2 | sdxl | a family's KIND: sd3, flux), the scheduler config, `variant` ("fp16" when
    the weights are only saved as that variant, else None) and the files loading reads (label -> path)."""

    folder: Path
    kind: str
    scheduler_config: dict
    variant: str | None
    files: dict[str, Path]


def is_world_folder(folder: Path) -> bool:
    """The embedded world's layout: a prompt_encoder/ subfolder beside vae/ and unet/."""
    return (folder / "prompt_encoder").is_dir()


def sd_kind(model_index: dict, unet_config: dict, text_encoder_config: dict) -> str:
    """sdxl when the pipeline is an XL one (second text encoder, or the UNet's `text_time` added conditioning);
    sd2 when the text encoder is OpenCLIP's (`gelu` activation) or the cross-attention width is 1024; else sd1."""
    if "text_encoder_2" in model_index or "XL" in str(model_index.get("_class_name", "")) \
            or unet_config.get("addition_embed_type") == "text_time":
        return "sdxl"
    if text_encoder_config.get("hidden_act") == "gelu" or unet_config.get("cross_attention_dim") == 1024:
        return "sd2"
    return "sd1"


def check_components(folder: Path, components: Components, require_weights: bool) -> tuple[dict[str, Path], str | None]:
    """The files each component loads from (label -> path) and the weights' variant ("fp16" when saved only as that
    variant); raises ValueError naming the missing or broken file. Without `require_weights`, configs and tokenizers
    only (the config folder of a single-file checkpoint)."""
    files: dict[str, Path] = {}
    variant = None
    for component, stems in components.items():
        sub = folder / component
        if stems is not None:
            files[f"{component}/config.json"] = sub / "config.json"
            check_config_file(sub / "config.json")
            if not require_weights:
                continue
            weights = weights_files(sub, stems)
            variant = "fp16" if ".fp16." in weights[0].name else variant
            files.update({f"{component}/{file.name}": file for file in weights})
        elif component.startswith("scheduler"):
            files[f"{component}/scheduler_config.json"] = sub / "scheduler_config.json"  # read by inspect_folder
        else:
            if not any(all((sub / name).is_file() for name in names) for names in TOKENIZER_FILES):
                raise ValueError(f"model folder is missing the tokenizer files in {str(sub)!r}: tokenizer.json, "
                                 f"vocab.json and merges.txt, or spiece.model")
            files.update({f"{component}/{f.name}": f for f in sorted(sub.glob("*")) if f.is_file()})
    return files, variant


def inspect_folder(folder: str | Path, require_weights: bool = True) -> FolderInfo:
    """Check a diffusers model folder (every component of its family present, weights files whole) and detect its
    family and kind (`models/families.py`); raises ValueError naming the missing or broken file.
    `require_weights=False` checks a config folder for a single-file checkpoint: configs and tokenizers only."""
    from .families import family_of_folder

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"model path {str(folder)!r} is not an existing folder")
    index_file = folder / "model_index.json"
    if not index_file.is_file() and not any((folder / sub / "config.json").is_file() for sub in ("unet", "transformer")):
        raise ValueError(
            f"model path {str(folder)!r} is neither a diffusers model folder (model_index.json, unet/ or transformer/, "
            "vae/, text encoders, tokenizers, scheduler/) nor a world folder (vae/, unet/, prompt_encoder/)"
        )
    model_index = check_config_file(index_file) if index_file.is_file() else {}
    family = family_of_folder(model_index, folder)
    if family is None:
        unet_config = check_config_file(folder / "unet" / "config.json")
        text_encoder_config = check_config_file(folder / "text_encoder" / "config.json")
        kind = sd_kind(model_index, unet_config, text_encoder_config)
        components = SDXL_COMPONENTS if kind == "sdxl" else SD_COMPONENTS
    else:
        kind, components = family.KIND, family.COMPONENTS
    # A component model_index.json sets to [null, null] is left out by design (SD3 without its T5 encoder).
    components = {name: stems for name, stems in components.items() if model_index.get(name) != [None, None]}
    files, variant = check_components(folder, components, require_weights)
    if index_file.is_file():
        files["model_index.json"] = index_file
    scheduler_config = check_config_file(folder / "scheduler" / "scheduler_config.json")
    return FolderInfo(folder, kind, scheduler_config, variant, files)
