"""Catalogue facts read from a version's files (模型广场): family, parameters, context, dtypes,
license, chat template. Also where a config asking for remote code is refused: TuneForge never
runs a model's own Python code, so such a model could not be loaded without it."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from services.kit.errors import InvalidArgument
from services.kit.store import ObjectStore

SMALL_FILE_LIMIT = 4 * 1024 * 1024
_LICENSE = re.compile(r"^license:\s*[\"']?([^\"'\n]+)", re.MULTILINE)


async def _json(
    store: ObjectStore, prefix: str, by_path: dict[str, dict[str, Any]], path: str
) -> dict[str, Any] | None:
    entry = by_path.get(path)
    if entry is None or entry["size_bytes"] > SMALL_FILE_LIMIT:
        return None
    try:
        value = json.loads(await store.read_range(prefix + path, 0, entry["size_bytes"]))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidArgument.field("files", f"{path} is not valid JSON", reason="INVALID_CONFIG") from None
    return value if isinstance(value, dict) else None


async def read_catalog(store: ObjectStore, prefix: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    """Facts about the stored files; raises InvalidArgument (REMOTE_CODE) for remote-code configs."""
    by_path = {f["path"]: f for f in files}
    config = await _json(store, prefix, by_path, "config.json") or {}
    adapter = await _json(store, prefix, by_path, "adapter_config.json") or {}
    tokenizer_config = await _json(store, prefix, by_path, "tokenizer_config.json") or {}
    for name, document in (("config.json", config), ("tokenizer_config.json", tokenizer_config)):
        if document.get("auto_map") or document.get("trust_remote_code"):
            raise InvalidArgument.field(
                "files",
                f"{name} asks for remote code (auto_map); TuneForge never runs a model's own code. "
                "Use a model whose architecture transformers supports natively",
                reason="REMOTE_CODE",
            )
    parameters = 0
    dtypes: set[str] = set()
    modules: set[str] = set()
    for entry in files:
        if not entry["path"].endswith(".safetensors") or entry["size_bytes"] < 8:
            continue
        key = prefix + entry["path"]
        length = int.from_bytes(await store.read_range(key, 0, 8), "little")
        header = json.loads(await store.read_range(key, 8, length))
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            parameters += math.prod(tensor["shape"])
            dtypes.add(tensor["dtype"])
            parts = name.split(".")
            if len(parts) >= 2 and parts[-1] == "weight" and len(tensor["shape"]) == 2 and len(modules) < 512:
                modules.add(parts[-2][:100])
    license_ = str(config.get("license") or "")
    if not license_ and "README.md" in by_path and by_path["README.md"]["size_bytes"] <= SMALL_FILE_LIMIT:
        card = (await store.read_range(prefix + "README.md", 0, by_path["README.md"]["size_bytes"])).decode(
            errors="replace"
        )
        match = _LICENSE.search(card.split("---")[1] if card.startswith("---") else "")
        license_ = match.group(1).strip() if match else ""
    family = str(config.get("model_type") or "")
    if adapter and not family:
        family = f"lora:{adapter.get('peft_type', 'LORA').lower()}"
    return {
        "family": family,
        "parameter_count": parameters,
        "context_length": int(config.get("max_position_embeddings") or config.get("n_positions") or 0),
        "dtypes": sorted(dtypes),
        "linear_modules": sorted(m for m in modules if not m.isdigit()) if not adapter else [],
        "license": license_,
        "has_chat_template": bool(tokenizer_config.get("chat_template")) or "chat_template.jinja" in by_path,
    }
