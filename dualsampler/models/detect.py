"""What a model folder holds, read from its own files before anything loads: the embedded world's layout, or a
diffusers Stable Diffusion folder (SD 1.x, SD 2.x, SDXL base) and the files each component loads from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checks import check_config_file, weights_files

KINDS = ("world", "sd1", "sd2", "sdxl")
SD_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
SDXL_COMPONENTS = SD_COMPONENTS + ("text_encoder_2", "tokenizer_2")
WEIGHT_STEMS = {
    "unet": ("diffusion_pytorch_model",),
    "vae": ("diffusion_pytorch_model",),
    "text_encoder": ("model", "pytorch_model"),
    "text_encoder_2": ("model", "pytorch_model"),
}
# A tokenizer folder holds the fast tokenizer's one file (what `save_pretrained` writes with transformers 5) or the
# BPE pair of the slow one; either loads.
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))


@dataclass(frozen=True)
class FolderInfo:
    """A checked Stable Diffusion folder: `kind` (sd1 | sd2 | sdxl), the scheduler config, `variant` ("fp16" when
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


def inspect_sd_folder(folder: str | Path, require_weights: bool = True) -> FolderInfo:
    """Check a diffusers Stable Diffusion folder (every component present, weights files whole) and detect its
    kind; raises ValueError naming the missing or broken file. `require_weights=False` checks a config folder for
    a single-file checkpoint: configs and tokenizers only."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"model path {str(folder)!r} is not an existing folder")
    index_file = folder / "model_index.json"
    if not index_file.is_file() and not (folder / "unet" / "config.json").is_file():
        raise ValueError(
            f"model path {str(folder)!r} is neither a diffusers Stable Diffusion folder (model_index.json, unet/, vae/, "
            "text_encoder/, tokenizer/, scheduler/) nor a world folder (vae/, unet/, prompt_encoder/)"
        )
    model_index = check_config_file(index_file) if index_file.is_file() else {}
    unet_config = check_config_file(folder / "unet" / "config.json")
    text_encoder_config = check_config_file(folder / "text_encoder" / "config.json")
    kind = sd_kind(model_index, unet_config, text_encoder_config)
    files: dict[str, Path] = {"model_index.json": index_file} if index_file.is_file() else {}
    variant = None
    for component in SDXL_COMPONENTS if kind == "sdxl" else SD_COMPONENTS:
        sub = folder / component
        if component in WEIGHT_STEMS:
            files[f"{component}/config.json"] = sub / "config.json"
            check_config_file(sub / "config.json")
            if not require_weights:
                continue
            weights = weights_files(sub, WEIGHT_STEMS[component])
            variant = "fp16" if ".fp16." in weights[0].name else variant
            files.update({f"{component}/{file.name}": file for file in weights})
        elif component == "scheduler":
            files["scheduler/scheduler_config.json"] = sub / "scheduler_config.json"
        else:
            if not any(all((sub / name).is_file() for name in names) for names in TOKENIZER_FILES):
                raise ValueError(f"model folder is missing the tokenizer files in {str(sub)!r}: tokenizer.json, or "
                                 f"vocab.json and merges.txt")
            files.update({f"{component}/{f.name}": f for f in sorted(sub.glob("*")) if f.is_file()})
    scheduler_config = check_config_file(folder / "scheduler" / "scheduler_config.json")
    return FolderInfo(folder, kind, scheduler_config, variant, files)
