"""Size and count limits of the contract, defined once: the models, the API's checks and the SDK share them."""

MIB = 1024 * 1024
BODY_LIMIT = 1 * MIB  # any JSON request body
INGEST_BODY_LIMIT = 16 * MIB  # a log or metric batch
MAX_DECODED_BATCH_BYTES = 4 * INGEST_BODY_LIMIT  # an Arrow batch once decompressed
MAX_JSON_OBJECT_BYTES = 64 * 1024  # a free-form JSON object (hyperparameters, resources)
MAX_JSON_DEPTH = 32
MAX_BATCH_ITEMS = 50_000  # lines or points in one ingest batch
MAX_LOG_MESSAGE = 10_000  # characters of one log line
MAX_NAME_LENGTH = 200  # a name: project, run, metric, artifact
MAX_TEXT_LENGTH = 5000  # a description or objective
MAX_PATH_LENGTH = 2000  # a dataset or artifact path, tag notes
MAX_TAG_LENGTH = 64
MAX_TAGS = 50
MAX_TRAINER_NAME_LENGTH = 64
MAX_BATCH_ID_LENGTH = 128
MAX_MEMBERS = 500
MAX_METRIC_NAMES = 100  # names in one metrics query
MAX_HOST_DEVICES = 256  # GPUs one host registers
MAX_HOST_NAME_LENGTH = 128
MAX_CHECKSUM_FILES = 10_000  # files of one checkpoint with a recorded SHA-256
