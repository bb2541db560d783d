"""Image checks done in the API, so a resize job is only enqueued for an image the worker can process."""

import uuid

from fastapi import HTTPException, UploadFile
from PIL import Image, UnidentifiedImageError

from fbt_tasks.images import MAX_SIDE
from fbt_tasks.settings import Settings


def check_pixels(width: int, height: int, settings: Settings) -> None:
    if width * height > settings.max_image_pixels:
        limit = settings.max_image_pixels / 1e6
        raise HTTPException(422, detail=f"Image of {width}x{height} exceeds the {limit:g}-megapixel limit")


def output_name() -> str:
    """The resize output's file name: chosen here, never by the client, so it cannot name another path."""
    return f"{uuid.uuid4().hex}.jpg"


def store_upload(file: UploadFile, settings: Settings) -> str:
    """Check the upload is a real, sane image before anything is enqueued; return its path under media_dir.

    The stored name is generated: the client's ``filename`` is never used, so it cannot steer the path.
    """
    try:
        with Image.open(file.file) as probe:
            probe.verify()
            width, height = probe.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise HTTPException(422, detail="Upload is not a readable PNG or JPEG image") from exc
    if width > MAX_SIDE or height > MAX_SIDE:
        raise HTTPException(422, detail=f"Uploaded image {width}x{height} exceeds {MAX_SIDE} px per side")
    check_pixels(width, height, settings)
    name = f"in/{uuid.uuid4().hex}"
    target = settings.media_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    file.file.seek(0)
    target.write_bytes(file.file.read())
    return name
