"""Every setting, read once from the environment and ``.env``; the only place that reads configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """newsbot's configuration; environment variables are ``NEWSBOT_<FIELD>`` unless noted."""

    model_config = SettingsConfigDict(env_prefix="NEWSBOT_", env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore")

    data_dir: Path = Field(Path(".newsbot"), description="Where the index lives.")
    collection: str = Field("newsbot", min_length=3, max_length=50, description="Chroma collection name.")
    model_cache_dir: Path | None = Field(None, description="Where the ONNX export of the model is cached "
                                                           "(default: <data_dir>/models).")
    embed_threads: int = Field(0, ge=0, description="ONNX Runtime threads; 0 = one per core.")
    title_prefix: bool = Field(True, description="Embed title, outlet and date with each chunk.")
    top_k: int = Field(10, ge=1, le=100, description="Passages retrieved per question.")
    dense_weight: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the dense score in fusion.")
    max_quotes: int = Field(5, ge=1, le=10, description="Most sentences quoted in an extractive answer.")
    abstain_threshold: float = Field(0.35, ge=0.0, le=1.0, description="Evidence below this abstains.")
    max_file_bytes: int = Field(256 * 1024 * 1024, ge=1, description="Largest input file accepted.")
    max_article_chars: int = Field(1_000_000, ge=100, description="Longest article body accepted.")
    max_question_chars: int = Field(2000, ge=10, description="Longest question accepted.")
    log_level: str = Field("WARNING", description="DEBUG, INFO, WARNING or ERROR.")

    discord_token: SecretStr | None = Field(None, validation_alias="DISCORD_TOKEN",
                                            description="Bot token (env DISCORD_TOKEN, no prefix).")

    @property
    def cache_dir(self) -> Path:
        return self.model_cache_dir or (self.data_dir / "models")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and ./.env, with command-line overrides applied."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
