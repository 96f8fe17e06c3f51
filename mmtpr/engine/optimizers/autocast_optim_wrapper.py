"""Mixed-precision training on the CPU and on CUDA."""
from contextlib import contextmanager
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from mmtpr.registry import OPTIM_WRAPPERS
from mmtpr.utils.errors import ConfigError

_DTYPES = {
    'float16': torch.float16,
    'fp16': torch.float16,
    'bfloat16': torch.bfloat16,
    'bf16': torch.bfloat16,
}


def resolve_amp_dtype(dtype: Union[str, torch.dtype, None],
                      device_type: str) -> torch.dtype:
    """The autocast dtype for ``dtype`` ('auto', a name or a dtype).

    'auto' (or None) is bfloat16 on the CPU and on CUDA devices that
    support it (no loss scaling needed: bfloat16 has float32's range), and
    float16 on older CUDA devices.

    Raises:
        ValueError: an unknown name, or float16 on the CPU (PyTorch's CPU
            autocast only supports bfloat16).
    """
    if dtype is None or dtype == 'auto':
        if device_type == 'cuda' and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ConfigError(f"AMP dtype must be 'auto' or one of "
                             f"{sorted(_DTYPES)}, got '{dtype}'")
        dtype = _DTYPES[dtype]
    if dtype not in (torch.float16, torch.bfloat16):
        raise ConfigError('AMP dtype must be float16 or bfloat16, got '
                          f'{dtype}')
    if device_type == 'cpu' and dtype != torch.bfloat16:
        raise ConfigError('mixed precision on the CPU supports bfloat16 '
                          f'only (got {dtype}); use dtype="bfloat16" or '
                          '"auto"')
    return dtype


def _grad_scaler(loss_scale: Union[str, float, dict], use_fsdp: bool):
    """The loss scaler of float16 training, from MMEngine's options."""
    if use_fsdp:
        from torch.distributed.fsdp.sharded_grad_scaler import (
            ShardedGradScaler,
        )
        scaler_type = ShardedGradScaler
    else:
        def scaler_type(**kwargs):
            return torch.amp.GradScaler('cuda', **kwargs)
    if loss_scale == 'dynamic':
        return scaler_type()
    if isinstance(loss_scale, float):
        return scaler_type(init_scale=loss_scale)
    if isinstance(loss_scale, dict):
        return scaler_type(**loss_scale)
    raise ConfigError("loss_scale must be a float, a dict or 'dynamic', "
                      f'got {loss_scale!r}')


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Mixed-precision training with float32 master weights, on the CPU and
    on CUDA.

    The forward pass runs under ``torch.autocast`` in ``dtype``; the model
    keeps float32 weights. bfloat16 has float32's exponent range and needs
    no loss scaling; float16 (CUDA only) uses a dynamic loss scaler with
    MMEngine's ``loss_scale`` options (``use_fsdp`` selects the sharded
    scaler, as in MMEngine). MMEngine's ``AmpOptimWrapper`` does the same on
    GPUs but refuses the CPU and has no automatic dtype choice; it stays
    available under its own name. ``tools/train.py --amp`` selects this
    wrapper.

    Args:
        loss_scale (str | float | dict): the loss scaler's setting, used
            with float16 only. Defaults to 'dynamic'.
        dtype (str | torch.dtype): 'auto' (bfloat16 on the CPU and on CUDA
            devices that support it, else float16), 'bfloat16' or
            'float16'. Defaults to 'auto'.
        use_fsdp (bool): use the sharded gradient scaler (float16 with
            FullyShardedDataParallel). Defaults to False.
        **kwargs: arguments of :class:`mmengine.optim.OptimWrapper`.

    Example:
        >>> optim_wrapper = dict(type='AutocastOptimWrapper', dtype='auto',
        ...                      optimizer=dict(type='Adam', lr=1e-3))
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Union[str, torch.dtype, None] = 'auto',
                 use_fsdp: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.device_type = get_device()
        if self.device_type not in ('cpu', 'cuda'):
            raise ConfigError('AutocastOptimWrapper supports cpu and cuda, '
                              f'got device {self.device_type}')
        self.cast_dtype = resolve_amp_dtype(dtype, self.device_type)
        self.use_fsdp = use_fsdp
        self._scale_update_param: Optional[float] = None
        self.loss_scaler = None
        if self.cast_dtype == torch.float16:
            if isinstance(loss_scale, float):
                self._scale_update_param = loss_scale
            self.loss_scaler = _grad_scaler(loss_scale, use_fsdp)
        scaling = ('dynamic loss scaling' if self.loss_scaler is not None
                   else 'no loss scaling')
        print_log(f'AMP: autocast to {self.cast_dtype} on '
                  f'{self.device_type}, {scaling}, float32 master weights',
                  logger='current')

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate ``loss`` (scaled when float16)."""
        if self.loss_scaler is not None:
            loss = self.loss_scaler.scale(loss)
        loss.backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs) -> None:
        """Update the parameters (unscaling first when float16)."""
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._scale_update_param)

    def state_dict(self) -> dict:
        """The optimizer's state, plus the loss scaler's when float16."""
        state_dict = super().state_dict()
        if self.loss_scaler is not None:
            state_dict['loss_scaler'] = self.loss_scaler.state_dict()
        return state_dict

    def load_state_dict(self, state_dict: dict) -> None:
        """Load the optimizer's (and the loss scaler's) state."""
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop('loss_scaler', None)
        if scaler_state is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler_state)
        if 'base_param_settings' in state_dict:
            self.base_param_settings = state_dict.pop('base_param_settings')
        self.optimizer.load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Gradient-accumulation context plus autocast."""
        with super().optim_context(model), torch.autocast(
                device_type=self.device_type, dtype=self.cast_dtype):
            yield
