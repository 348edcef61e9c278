"""Datasets: the A-OKVQA schema and loader, the hub fetch, and the offline easy-VQA demo."""
from .aokvqa import (REQUIRED_COLUMNS, DatasetError, Question, check_columns, check_parquet,
                     load_questions, shard, write_questions)

__all__ = ["REQUIRED_COLUMNS", "DatasetError", "Question", "check_columns", "check_parquet",
           "load_questions", "shard", "write_questions"]
