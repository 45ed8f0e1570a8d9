"""Caps on what the function process itself parses from an untrusted upload (outside the sandbox),
and the one cap on UploadModel pacing that the CLI and the job's tasks share.

A leaf shared by two stages: intake refuses an upload over a cap from its object metadata, before
any download (`intake/uploads.check_size`); validation refuses the downloaded file over the same
cap (`validation/scan/`). One home, so the two can never disagree.

Each cap bounds memory and CPU in the function process, whose memory is the ~20% of the instance
the sandbox does not get. Reference points, measured with Keras 3.15 / TF 2.21 (`model.save` and
`model.export` of `keras.applications` models, the largest of which is EfficientNetB7):

| file | EfficientNetB7 | ResNet152 | cap | worst-case memory at the cap |
|---|---|---|---|---|
| saved_model.pb | 7.5 MB, parse ~24 MB | 5.9 MB, ~18 MB | 32 MiB, parse <= 96 MiB | 96 MiB + 2x the file |
| config.json | 789 KB, 49k JSON values | 514 KB, 31k | 16 MiB and 1,000,000 values | ~100 MiB |
| metadata.json | ~100 B | ~100 B | 1 MiB | ~20 MiB |
| variables.index | 123 KB | 106 KB | 64 MiB, 1,000,000 entries, 64 KiB keys | the file (mmap) + one key |
| .keras central directory | 3 members | 3 members | MAX_ARCHIVE_MEMBERS, 1 KiB a member | ~1 KiB a member |

Every cap is 4x to 20x above those models; an upload over a cap is rejected with a reason code
that names the cap (nothing is guessed or truncated).
"""

from __future__ import annotations

MiB = 1024**2

# saved_model.pb: checked from object metadata before download, and again on the file.
MAX_GRAPH_BYTES = 32 * MiB
# A parsed protobuf message costs tens of bytes however small its encoding (an empty repeated
# NodeDef is 2 bytes: ~30x), so what the parse would allocate is estimated from the wire format
# before parsing (`proto.estimate_parse_bytes`) and capped; the estimate for EfficientNetB7's
# graph is 24 MB.
MAX_GRAPH_PARSE_BYTES = 96 * MiB

# variables/variables.index (a LevelDB-format table): read through mmap, entries streamed.
MAX_INDEX_BYTES = 64 * MiB
MAX_INDEX_ENTRIES = 1_000_000
MAX_INDEX_KEY_BYTES = 64 * 1024
# Prefix compression lets a few bytes stand for a long key: total decoded key bytes are capped
# at this multiple of the file's size (plus 1 MiB), so the work stays proportional to the input.
MAX_INDEX_KEY_EXPANSION = 16

# .keras members parsed as JSON. A JSON value costs ~50-100 bytes in Python (a 3-byte `{},`
# becomes a 64-byte dict), so the number of values (counted before parsing) is capped too.
MAX_CONFIG_JSON_BYTES = 16 * MiB
MAX_METADATA_JSON_BYTES = 1 * MiB
MAX_JSON_VALUES = 1_000_000

# .keras central directory: at most this many bytes per allowed member (MAX_ARCHIVE_MEMBERS),
# checked from the end-of-central-directory record before zipfile reads a single entry.
CD_BYTES_PER_MEMBER = 1024

# UploadModel calls per minute a backfill may be asked for: Vertex's default is 60 per minute per
# region ("Job or LRO submission requests"), and a project with a raised quota may pace up to this.
# One home: `registrar backfill --uploads-per-minute` (CLI) and each fleet task's share of it
# (`python -m handlers.job backfill`, the job) are held to the same maximum.
MAX_UPLOADS_PER_MINUTE = 600
