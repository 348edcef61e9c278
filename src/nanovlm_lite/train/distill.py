"""The distillation loss: the teacher's distributions (train/teacher.py) against the
student's, softened by a temperature T, mixed with the hard-label cross-entropy.

    loss = alpha * T^2 * KL(p_T || q_T) + (1 - alpha) * CE(student, labels)

p_T is the teacher's distribution at temperature T, q_T the student's, on the distribution
the point is scored on:
- letter examples: both over the question's choice letters (what letter scoring takes the
  argmax of), from the teacher's stored letter log-probs;
- answer examples: over the answer's tokens (every target token, <|im_end|> included). The
  teacher is stored as its top-k tokens (teacher.py), so p_T is its top-k renormalised at
  T (exact when k covers the vocabulary) and q_T the student's full-vocabulary softmax at
  T: KL(p_T || q_T) = sum over the k tokens of p (log p - log q), which is >= 0 and 0 only
  when the student puts exactly p on those tokens and nothing elsewhere.
The T^2 factor (Hinton et al. 2015) keeps the soft term's gradients the same size as T
changes (they shrink as 1/T^2). KL is averaged over the distilled positions, CE over every
target token (as the plain loss is). alpha 0 is the plain loss; alpha 1 is pure
distillation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SoftTargets:
    """The teacher's side of one batch: rows of the batch's target logits and, for each,
    the stored token ids and log-probs at temperature 1 (-inf marks padding)."""
    index: torch.Tensor        # [R] long: which target (row of the student's logits)
    ids: torch.Tensor          # [R, K] long: token ids of the stored distribution
    logprobs: torch.Tensor     # [R, K] float: the teacher's log-probs of those ids
    full_vocab: torch.Tensor   # [R] bool: normalise the student over the vocabulary (answer)
                               #   or over the stored ids only (letter: the choices)

    def to(self, device) -> "SoftTargets":
        return SoftTargets(self.index.to(device), self.ids.to(device),
                           self.logprobs.to(device), self.full_vocab.to(device))


def kd_loss(logits: torch.Tensor, soft: SoftTargets, temperature: float) -> torch.Tensor:
    """T^2 * mean over the soft rows of KL(p_T || q_T) (module docstring); `logits` are the
    student's float32 target logits [n_targets, vocab]."""
    t = float(temperature)
    valid = torch.isfinite(soft.logprobs)
    z = logits[soft.index] / t                                     # [R, V]
    picked = z.gather(1, soft.ids)                                 # [R, K]
    over_ids = torch.logsumexp(picked.masked_fill(~valid, float("-inf")), dim=-1)
    norm = torch.where(soft.full_vocab, torch.logsumexp(z, dim=-1), over_ids)
    log_q = picked - norm[:, None]
    log_p = torch.log_softmax((soft.logprobs / t).masked_fill(~valid, float("-inf")), dim=-1)
    diff = (log_p - log_q).masked_fill(~valid, 0.0)
    kl = (log_p.exp() * diff).sum(-1)
    return kl.mean() * t * t


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, soft: SoftTargets | None,
                      alpha: float, temperature: float) -> torch.Tensor:
    """alpha * T^2 KL + (1 - alpha) * CE; the plain cross-entropy when alpha is 0 or there
    is nothing to distil."""
    hard = F.cross_entropy(logits, labels)
    if not alpha or soft is None or soft.index.numel() == 0:
        return hard
    soft_term = kd_loss(logits, soft.to(logits.device), temperature)
    if alpha == 1:
        return soft_term
    return alpha * soft_term + (1.0 - alpha) * hard
