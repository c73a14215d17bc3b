"""The seed's example bodies, shown in /docs."""

PROJECT_CREATE = {
    "name": "中文摘要系统",
    "description": "对科研文章进行自动摘要",
    "objective": "降低阅读时间",
    "task_type": "文本摘要",
    "base_model": "llama-2-13b",
    "owner": "小李",
    "tags": ["科研", "第一阶段"],
    "default_hyperparameters": {"learning_rate": 3e-5, "batch_size": 16},
}

RUN_CREATE = {
    "name": "run-001",
    "model": "llama-2-13b",
    "dataset": "中文科技论文语料",
    "hyperparameters": {"learning_rate": 2e-5, "batch_size": 32, "num_epochs": 3},
    "resources": {"gpu_type": "A100", "gpu_count": 4},
}

RUN_RESUME = {
    "name": "run-002",
    "model": "llama-2-13b",
    "dataset": "中文科技论文语料",
    "hyperparameters": {"learning_rate": 1.5e-5},
}

TAG = {"tag": "发布", "notes": "在验证集上 BLEU 32.5，通过复核"}
