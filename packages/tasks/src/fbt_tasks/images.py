"""``resize_image``: the tutorial's data-processing task, and the CPU-heavy workload."""

from pathlib import Path

from PIL import Image

from fbt_tasks.settings import get_settings

MAX_SIDE = 8000


def generate_image(width: int, height: int, seed: int) -> Image.Image:
    """A deterministic, incompressible test image: noise costs real CPU to resample, like a photo."""
    noise = Image.effect_noise((width, height), 64 + seed % 64)
    gradient = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (noise, gradient, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def resize_image(
    output: str,
    target_width: int,
    target_height: int,
    width: int = 0,
    height: int = 0,
    seed: int = 0,
    source: str | None = None,
) -> str:
    """Resize an uploaded image (``source``, relative to MEDIA_DIR) or a generated one; return the output path."""
    media = get_settings().media_dir
    if source is not None:
        with Image.open(media / source) as uploaded:
            image = uploaded.convert("RGB")
    else:
        image = generate_image(width, height, seed)
    resized = image.resize((target_width, target_height), Image.Resampling.LANCZOS)
    out = media / "out" / Path(output).name
    out.parent.mkdir(parents=True, exist_ok=True)
    resized.save(out, format="JPEG", quality=85)
    return str(out)
