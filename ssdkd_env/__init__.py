"""ssdkd_env: data-free knowledge distillation (SSD-KD and related methods) as a Gymnasium environment."""

__version__ = "0.1.0"
