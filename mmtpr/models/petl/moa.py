"""DM-Adapter: a sparse mixture of adapters with a domain-aware router,
beside the MLP of CLIP's blocks."""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmtpr.registry import PETL

from .utils import TOWERS, Layers, PETLModule, attach, petl_blocks

# The reference hard-codes the output scale per tower (docs/methods.md §2.2).
DEFAULT_SCALES = {'visual': 0.1, 'text': 4.0}


@PETL.register_module()
class MixtureOfAdapters(PETLModule):
    """Sparse mixture of adapters with a domain-aware router (DM-Adapter,
    AAAI 2025; docs/methods.md §2.2), parallel to the MLP of a block::

        u   = LN3(x)                                   (x: post-attention)
        g   = (1 - alpha) W_in u + alpha W_task p_dom  (E logits per token)
        S   = top-k(g)  on the raw logits; w = softmax(g[S])
        y   = sum_{e in S} w_e * Expert_e(u)           Expert: d -> d/r -> d
        out = x + MLP(LN2(x)) + s * y

    No noise, no capacity limit, identical routing in train and eval.
    ``p_dom`` is a learnable domain prompt (N(0, 1), one per domain; one
    domain is the paper), W_in and W_task are bias-free N(0, 0.02), alpha is
    learnable from 0.5 (unconstrained). Experts: ReLU, biases, down Kaiming-
    uniform(a=sqrt 5) with zero bias, up zero (the branch outputs 0 at
    init). LN3 is a fresh LayerNorm (weight 1, bias 0).

    The load-balancing term of the layer, ``sum_e P_e * f_e`` (P_e the mean
    full-softmax probability of expert e, f_e the fraction of tokens routed
    to it, non-differentiable), is kept in :attr:`aux_loss` after each
    forward together with routing statistics (:attr:`routing`), and
    collected by the retriever. By default every token counts (the
    reference counts text padding); ``count_padding=False`` counts only the
    tokens marked valid by :meth:`set_context`.

    Two dispatches compute the same mixture (equal to a dense reference
    within float rounding): ``'masked'`` (the default) runs every expert on
    every token as two large matrix products with zero weights off the
    top-k: E / k times the experts' FLOPs (about 1.5 % of a ViT-B/16
    block's), but a constant number of operations, no host sync and an
    exportable graph; ``'grouped'`` sorts tokens by expert and runs each
    expert on its own tokens (fewest FLOPs, E small products).

    Args:
        dim (int): width d.
        num_experts (int): E. Defaults to 6.
        top_k (int): experts per token. Defaults to 2.
        reduction (int): expert bottleneck d / r. Defaults to 8.
        scale (float): output scale s. Defaults to 1.0 (``inject`` uses
            0.1 for the visual tower and 4 for the text tower).
        num_domains (int): domain prompts per layer. Defaults to 1.
        alpha_init (float): Defaults to 0.5.
        gate_std (float): std of the gate weights. Defaults to 0.02.
        count_padding (bool): count padding tokens in the load-balancing
            term. Defaults to True (as the reference).
        dispatch (str): 'masked' or 'grouped' (see above). Defaults to
            'masked'.
        domain_term (bool): keep the router's domain term. False is the
            ablation without it (alpha fixed at 0: ``g = W_in u``; no
            task gate, no domain prompts, no alpha). Defaults to True.
    """

    def __init__(self, dim: int, num_experts: int = 6, top_k: int = 2,
                 reduction: int = 8, scale: float = 1.0,
                 num_domains: int = 1, alpha_init: float = 0.5,
                 gate_std: float = 0.02, count_padding: bool = True,
                 dispatch: str = 'masked', domain_term: bool = True) -> None:
        super().__init__()
        if dispatch not in ('masked', 'grouped'):
            raise ValueError("dispatch must be 'masked' or 'grouped', got "
                             f'{dispatch!r}')
        self.dispatch = dispatch
        if not 1 <= top_k <= num_experts:
            raise ValueError(f'top_k must be in [1, num_experts={num_experts}'
                             f'], got {top_k}')
        if reduction < 1 or dim % reduction:
            raise ValueError(f'reduction must divide the width {dim}, got '
                             f'{reduction}')
        if num_domains < 1:
            raise ValueError(f'num_domains must be >= 1, got {num_domains}')
        hidden = dim // reduction
        self.num_experts, self.top_k, self.scale = num_experts, top_k, scale
        self.count_padding = count_padding
        self.ln = nn.LayerNorm(dim)
        self.input_gate = nn.Parameter(torch.empty(num_experts, dim))
        self.domain_term = domain_term
        if domain_term:
            self.task_gate = nn.Parameter(torch.empty(num_experts, dim))
            self.domain_prompts = nn.Parameter(torch.randn(num_domains, dim))
            self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))
        # (the order of the random draws is that of the reference)
        nn.init.normal_(self.input_gate, std=gate_std)
        if domain_term:
            nn.init.normal_(self.task_gate, std=gate_std)
        # experts stacked: (E, hidden, d), (E, hidden), (E, d, hidden), (E, d)
        self.down_weight = nn.Parameter(torch.empty(num_experts, hidden, dim))
        self.down_bias = nn.Parameter(torch.zeros(num_experts, hidden))
        self.up_weight = nn.Parameter(torch.zeros(num_experts, dim, hidden))
        self.up_bias = nn.Parameter(torch.zeros(num_experts, dim))
        for weight in self.down_weight:  # nn.Linear's default, per expert
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        self.domains: Optional[torch.Tensor] = None
        self.token_mask: Optional[torch.Tensor] = None
        self.aux_loss: Optional[torch.Tensor] = None
        self.routing: Dict[str, torch.Tensor] = {}

    @property
    def num_domains(self) -> Optional[int]:
        """Number of domain prompts of the router (None without the domain
        term)."""
        if not self.domain_term:
            return None
        return int(self.domain_prompts.shape[0])

    def set_context(self, domains: Optional[torch.Tensor] = None,
                    token_mask: Optional[torch.Tensor] = None) -> None:
        """Keep the batch's ``domains`` (B,) (which domain prompt each
        sample's tokens are routed with; the backbone checks the range) and
        ``token_mask`` (B, N) (the tokens counted in the load-balancing
        term when ``count_padding=False``)."""
        self.domains, self.token_mask = domains, token_mask

    def gate_logits(self, u: torch.Tensor) -> torch.Tensor:
        """(B, N, d) normalised tokens -> (B, N, E) router logits."""
        if not self.domain_term:
            return F.linear(u, self.input_gate)
        b = u.shape[0]
        if self.domains is None:
            prompts = self.domain_prompts[:1].expand(b, -1)
        else:
            prompts = self.domain_prompts[self.domains.to(u.device)]
        prompt_term = F.linear(prompts.to(u.dtype), self.task_gate)[:, None]
        return (1 - self.alpha) * F.linear(u, self.input_gate) + \
            self.alpha * prompt_term

    def route(self, logits: torch.Tensor):
        """Top-k on the raw logits, softmax over the chosen k.

        Tie rule: among equal logits the lower expert index is chosen (a
        stable sort; ``torch.topk`` leaves ties implementation-defined).
        While exporting to ONNX, ``topk`` is traced instead (the exporter has
        no stable sort): ONNX's TopK also puts the lower index first among
        equal values, so the exported graph routes as the stable sort does.
        """
        if torch.onnx.is_in_onnx_export():
            top_logits, top_index = logits.topk(self.top_k, dim=-1)
        else:
            top_logits, top_index = logits.sort(dim=-1, descending=True,
                                                stable=True)
            top_logits = top_logits[..., :self.top_k]
            top_index = top_index[..., :self.top_k]
        return top_index, top_logits.float().softmax(-1).to(logits.dtype)

    def experts(self, u: torch.Tensor, top_index: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        """(T, d) tokens, their (T, k) experts and combine weights -> the
        (T, d) weighted sum of the chosen experts' outputs."""
        if self.dispatch == 'grouped':
            return self._grouped(u, top_index, weights)
        return self._masked(u, top_index, weights)

    def _masked(self, u: torch.Tensor, top_index: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        """Every expert on every token, as two matrix products, with the
        combine weights of the experts not chosen set to zero.

        ``sum_e w_e up_e(relu(down_e u))`` with ``w_e = 0`` off the top-k is
        the sparse mixture exactly (a zero weight zeroes that expert's
        output and its gradients). The down projections of the E experts
        are one (E * d/r, d) matrix; scaling each expert's hidden units by
        its weight before the up projection makes the E up projections one
        (d, E * d/r) matrix. Two GEMMs and no data-dependent shapes: the
        cost does not depend on how tokens spread over experts, no value
        goes to the host, and the graph exports (ONNX) as it runs.
        """
        t, d = u.shape
        e, hidden = self.num_experts, self.down_weight.shape[1]
        dense = u.new_zeros(t, e).scatter(1, top_index, weights.to(u.dtype))
        h = F.relu(F.linear(u, self.down_weight.reshape(e * hidden, d),
                            self.down_bias.reshape(e * hidden)))
        h = (h.view(t, e, hidden) * dense[..., None].to(h.dtype)).reshape(
            t, e * hidden)
        up = self.up_weight.permute(1, 0, 2).reshape(d, e * hidden)
        y = F.linear(h, up) + dense.to(h.dtype) @ self.up_bias.to(h.dtype)
        return y.to(u.dtype)

    def _grouped(self, u: torch.Tensor, top_index: torch.Tensor,
                 weights: torch.Tensor) -> torch.Tensor:
        """Tokens sorted by expert, each expert run on its own tokens: the
        fewest FLOPs (k of E experts per token), one small matrix product
        per expert and one host sync for the group sizes."""
        flat_expert = top_index.reshape(-1)
        order = torch.argsort(flat_expert, stable=True)
        token = order // self.top_k
        weight = weights.reshape(-1)[order]
        counts = torch.bincount(flat_expert, minlength=self.num_experts)
        out = torch.zeros_like(u)
        start = 0
        for e, count in enumerate(counts.tolist()):
            if count == 0:
                continue
            idx = token[start:start + count]
            h = F.relu(F.linear(u[idx], self.down_weight[e],
                                self.down_bias[e]))
            y = F.linear(h, self.up_weight[e], self.up_bias[e])
            # under autocast y may be half while u (after LN) is float
            out.index_add_(0, idx, (y * weight[start:start + count, None]
                                    ).to(out.dtype))
            start += count
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, d) post-attention stream -> (B, N, d) scaled branch."""
        u = self.ln(x)
        logits = self.gate_logits(u)
        top_index, weights = self.route(logits)
        b, n, d = u.shape
        y = self.experts(u.reshape(b * n, d), top_index.reshape(b * n, -1),
                         weights.reshape(b * n, -1)).view(b, n, d)
        self._balance(logits, top_index)
        return self.scale * y

    def _balance(self, logits: torch.Tensor, top_index: torch.Tensor):
        probs = logits.float().softmax(-1).reshape(-1, self.num_experts)
        chosen = F.one_hot(top_index, self.num_experts).sum(-2).reshape(
            -1, self.num_experts).float()
        if not self.count_padding and self.token_mask is not None:
            keep = self.token_mask.reshape(-1).to(probs.device)
            probs, chosen = probs[keep], chosen[keep]
        p_mean, fraction = probs.mean(0), chosen.mean(0)
        self.aux_loss = (p_mean * fraction).sum()
        with torch.no_grad():
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
        self.routing = dict(fraction=fraction / self.top_k, entropy=entropy)

    @classmethod
    def inject(cls, clip: nn.Module, num_experts: int = 6, top_k: int = 2,
               reduction: int = 8, scales: Optional[Dict[str, float]] = None,
               num_domains: int = 1, alpha_init: float = 0.5,
               count_padding: bool = True, dispatch: str = 'masked',
               domain_term: bool = True, towers: Sequence[str] = TOWERS,
               layers: Layers = None) -> None:
        """Put a MixtureOfAdapters beside the MLP of every selected block;
        ``scales`` maps tower to output scale (default 0.1 visual, 4 text).
        """
        scales = dict(DEFAULT_SCALES, **(scales or {}))
        for tower, index, block in petl_blocks(clip, towers, layers):
            moa = cls(block.width, num_experts, top_k, reduction,
                      scales[tower], num_domains, alpha_init,
                      count_padding=count_padding, dispatch=dispatch,
                      domain_term=domain_term)
            attach(block, 'branch_mlp', moa, cls.__name__,
                   f'{tower} block {index}')
