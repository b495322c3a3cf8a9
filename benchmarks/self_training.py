"""Benchmark self-training under a domain shift: self-trained vs a labelled-only control of the same budget.

Two synthetic towns (``eoseg.demo.town``) per seed: town A in the default style gives the few labelled
scenes; town B (``--shift partial``, the default: :data:`~eoseg.demo.town.PARTIAL_STYLE`, four of town A's
roof colours and five new ones near them; ``--shift full``: :data:`~eoseg.demo.town.SHIFTED_STYLE`, only new
ones; both with the afternoon sun from the south-west) gives the unlabelled scenes plus ``--test`` held-out
labelled scenes.
``eoseg self-train`` (library call, ``--from-teacher``) trains the teacher on town A only (round 0),
pseudo-labels town B's unlabelled scenes (TTA-averaged probabilities, ``selftrain.pseudo``) and trains a
student from the teacher on town A mixed with them (``selftrain.mix``). The control gets the same budget
without the unlabelled data: it also starts from the teacher and trains on town A only for as many optimizer
steps as the student took. Every model then predicts town B's held-out scenes, scored with the metrics of
``eoseg evaluate`` (micro pixel IoU, SpaceNet object F1 at IoU >= 0.5). The script prints, per seed and on
average, the teacher, the control and the student, and the student's difference to the control (the gain
that the unlabelled scenes bring, the extra training steps taken out).

``--student-init scratch`` is the noisy student proper: the students and the control start from the teacher's own
init (``model.init_checkpoint``, ``train.seed``) instead of its weights (``self_train(from_teacher=False)``).

Every model is scored at its LAST checkpoint (``--checkpoint last``, ``selftrain.checkpoint``: the end of its
one-cycle schedule; the teacher's last checkpoint also makes the pseudo-labels), so the teacher, the
students and the control are selected the same way and never on town B. The students and the control
fine-tune the teacher at ``--student-lr`` (``selftrain.student_lr``).

Usage: uv run python benchmarks/self_training.py [--out DIR] [--size 384] [--labelled 3] [--unlabelled 8]
       [--test 4] [--epochs 24] [--student-epochs 4] [--student-lr 3e-4] [--augment colour]
       [--student-augment same] [--student-init teacher|scratch] [--rule hard] [--low 0.4] [--high 0.6]
       [--every 5 | --share 0.5] [--kl] [--rounds 1] [--teachers 1] [--control-budget student|ensemble]
       [--checkpoint last] [--seeds 0 1] [--shift partial|full] [--reuse DIR] [--set KEY=VALUE ...]

The gain is NOT real here. With labels scarce (2026-12-04 evening to 2026-12-08, 55 seeds; below) the first 11 seeds
led on object F1 (+0.023 +- 0.009, 9 of 11) and 44 more, run to test that lead, did not repeat it (IoU +0.007 +-
0.007, 23 of 44; F1 +0.010 +- 0.008, 22 of 44; the last 30 alone +0.003 +- 0.008 and +0.004 +- 0.008, 14 of 30
each). With the defaults, over 20 seeds the self-trained student is level with its labelled-only control of the same
budget, on pixel IoU and on object F1; pseudo-labels from an ensemble of three teachers (``--teachers 3``, measured
2026-12-04 below) did no better against that control and lost clearly against a control given the student's whole
training compute. The 24-epoch teachers are far from converged: more labelled epochs are worth more here than any
unlabelled scene. With teachers near convergence (72 epochs, 2026-12-04 afternoon) the ensemble of three no longer
beats its first teacher reliably and the student, half of every batch pseudo-labelled, still loses to its control.
Nor does a threshold fix the pseudo-labels: one matched to town A's building share (13 %) labels town B hardly
better than p > 0.5 (IoU +0.002 and +0.007 pooled over the scenes, -0.014 and -0.027 per scene), as the teachers'
share at 0.5 is already within 0.012 of the truth.
Student minus control (pixel IoU / object F1; the defaults: 24-epoch
teachers, hard rule 0.4..0.6, students and control fine-tuning the teacher at lr 3e-4 for 4 epochs, one
pseudo-labelled batch every 5); "over seeds": mean +- its standard error, seeds that gained:

====================  ==========================  ==========================
seeds                 defaults (hard 0.4..0.6)    per seed
====================  ==========================  ==========================
0 to 5                IoU +0.0051 +- 0.0045, 3/6  -0.0017 / -0.0012, +0.0149 / +0.0330, +0.0223 / +0.0266,
                      F1 +0.0139 +- 0.0055, 5/6   -0.0027 / +0.0016, +0.0036 / +0.0097, -0.0057 / +0.0135
6 to 12               IoU -0.0015 +- 0.0039, 3/7  +0.0083 / -0.0083, -0.0060 / +0.0056, -0.0017 / +0.0298,
                      F1 -0.0025 +- 0.0080, 3/7   -0.0066 / -0.0000, +0.0056 / -0.0060, +0.0094 / +0.0025,
                                                  -0.0196 / -0.0412
13 to 19              IoU -0.0028 +- 0.0021, 2/7  +0.0046 / +0.0148, -0.0108 / +0.0173, -0.0079 / -0.0338,
                      F1 -0.0018 +- 0.0067, 3/7   -0.0053 / -0.0027, +0.0019 / +0.0097, -0.0018 / -0.0095,
                                                  -0.0002 / -0.0083
all 20                IoU +0.0000 +- 0.0021, 8/20
                      F1 +0.0027 +- 0.0042, 11/20
====================  ==========================  ==========================

The first six seeds had suggested an object-F1 gain (2.5 standard errors, 5 of 6 seeds); the next fourteen, run
for that reason, did not repeat it (-0.0022 +- 0.0050, 6 of 14), so it was chance. The ``--low 0.1 --high 0.9``
band, measured on seeds 0 to 5 only, was within 0.004 IoU of the defaults on every seed (IoU +0.0041 +- 0.0048,
F1 +0.0147 +- 0.0053). The mechanism is the same on every seed that loses: the labelled-only control keeps
improving on the roof colours its teacher misses (its colour augmentation slowly covers them; seed 12: held-out
terracotta mean p teacher 0.34, control 0.51, student 0.39), while the student's pseudo-labels call those roofs
background and hold it at the teacher's blind spot; where the student gains it is by calling less background
building. Pseudo-labels with no background at all (``--low 0``: only p > 0.6 labelled, the rest ignored) were
worse, not better (-0.0103 +- 0.0027 IoU, 2 of 14 seeds; see the measurements of 2026-12-03 evening). The
defaults stay as they were.
:data:`SMALL` (64 px chips, overlap 32, a 3-stage Unet-resnet18) always applies, ``--set``
overrides it. Each seed also prints the pseudo-labels of the last round against the unlabelled scenes'
true footprints, the teacher's mean probability per roof colour on them, and each scored model's mean
probability per roof colour on the held-out scenes with its background pixels called building (p > 0.5).
Training both seeds' teachers (24 epochs) and their students takes 12 minutes on the 2 shared cores at load 3
(24 at load 7 to 9); ``--reuse`` of such a run (students, control and scoring only) takes 6 to 7 minutes per
seed at load 3 to 4.5 (15 to 20 at load 5 to 9). One seed's teacher and students took 38 minutes at load 5
(15:02 -> 15:40, beside three other jobs), a ``--reuse`` of it 12 minutes.

Measured 2026-12-04 evening (2 CPU cores; two runs side by side, each ``OMP_NUM_THREADS=1``, a README walk beside
them, load 2.2 to 3.5), labels scarce and unlabelled scenes many (the issue's "a few labelled scenes, many
unlabelled ones"): ``--labelled 2 --unlabelled 16 --epochs 72 --share 0.5 --student-epochs 24`` (one labelled
training scene and one validating, 16 unlabelled town-B scenes, a 72-epoch teacher of 432 steps; student and
control 312 steps from it, half of every student batch pseudo-labelled, 1,936 pseudo chips; hard rule 0.4..0.6):

- 18:28 -> 18:49 UTC, ``--out /tmp/ls1h --seeds 0`` (1,224 s) and beside it ``--out /tmp/ls1s ... --rule soft``:
  teacher 0.5532 / 0.6891, control 0.5822 / 0.7090, student 0.6079 / 0.7623 (hard), 0.6046 / 0.7463 (soft);
  gain +0.0257 / +0.0533 and +0.0224 / +0.0373. Pseudo-labels IoU 0.637 (P 0.82, R 0.75; soft p > 0.5: 0.612).
- 18:50 -> 20:23 UTC, ``--out /tmp/ls2a --seeds 1 3 5 7 9 ...`` and ``--out /tmp/ls2b --seeds 2 4 6 8 10 ...``
  (stopped after seeds 7 and 8; 22 to 27 minutes a seed): gain +0.0146 / +0.0432, -0.0031 / +0.0442, -0.0827 /
  -0.0047, +0.0259 / +0.0395, -0.0301 / +0.0161, -0.0041 / -0.0373, -0.0100 / +0.0073, -0.0229 / +0.0095 (seeds 1
  to 8); 20:25 -> 20:54 UTC, ``--out /tmp/ls3a --seeds 9 ...`` and ``--out /tmp/ls3b --seeds 10 ...`` (beside a CI
  run, load 5; stopped after those seeds): +0.0090 / +0.0118, +0.0323 / +0.0695. Over the 11 seeds (0 with the
  hard rule): IoU -0.0041 +- 0.0099 (5/11), object F1 +0.0229 +- 0.0092 (9/11); means teacher 0.5672 / 0.6708,
  control 0.5866 / 0.6901, student 0.5825 / 0.7131. The F1 lead is 2.5 standard errors, as the first six seeds
  of 2026-12-03 were before fourteen more erased it: not yet established. Held-out pixels, control -> student:
  the student finds more roofs on 8 of 11 seeds (true positives seed 1 44,621 -> 50,556) and calls more
  background building on 9 (seed 3 49,887 -> 73,238, where the
  teacher already called 18 % of town B building against a true 12 % and its pseudo-labels IoU was 0.447): it
  learns the teacher's false positives on town B as well as its roofs. Offline, a threshold that matches the one
  labelled scene's building share would have made seed 3's pseudo-labels better (IoU 0.447 -> 0.496 at p > 0.964)
  and seed 4's (0.594 -> 0.646), seed 0's and 1's the same, seed 2's worse (0.597 -> 0.571: one labelled scene's
  share, 0.115, is itself far from town B's 0.134); not added.
- 2026-12-04 21:40 -> 2026-12-05 00:30 UTC, the same setting on 14 fresh seeds (11 to 21, 23, 25, 27; two runs side
  by side, each ``OMP_NUM_THREADS=1``, about 17 minutes a seed), run to test the F1 lead of the first 11: student -
  control +0.0044 / +0.0361, +0.0323 / +0.0118, +0.0223 / +0.0073, +0.0037 / -0.0096, -0.0659 / +0.0347, +0.0922 /
  +0.0751, -0.0245 / -0.0488, -0.0093 / -0.0079, +0.0210 / +0.0592, -0.0180 / -0.0164, -0.0085 / -0.0400 (seeds 11 to
  21), +0.0272 / -0.0155, +0.1308 / +0.1901, +0.0105 / +0.0502 (23, 25, 27). Over the 14: IoU +0.0156 +- 0.0129 (9/14),
  F1 +0.0233 +- 0.0162 (8/14); over all 25: IoU +0.0069 +- 0.0085 (14/25), F1 +0.0231 +- 0.0097 (17/25). The F1 mean
  repeated, but its spread grew: the fresh seeds alone are 1.4 standard errors, and one seed (25) carries much of
  both means. Post hoc, on 11 of the fresh seeds, the pseudo-labels' precision against the unlabelled scenes' true
  footprints goes with the gain (r = 0.71 against the IoU gain; precision 0.82 or more: 6 of 6 seeds gained, below
  0.80: 4 of 5 lost). A stricter band for roofs (``--reuse`` of seeds 15, 17, 11, 19, 13 with ``--high 0.8``) does not
  make them precise enough: -0.0481 / +0.0228, -0.0131 / -0.0218, +0.0059 / +0.0363, +0.0054 / +0.0612, +0.0283 /
  +0.0121 (IoU -0.0043, F1 +0.0221 on average; the 0.6 band gave -0.0085 / +0.0177 on those seeds).
- 2026-12-08 01:10 -> 03:20 UTC, the same setting on 30 fresh seeds (28 to 57; ``--out /work/runs/ls5a --seeds 28 30
  ... 40`` beside ``ls5b --seeds 29 ... 41``, then ``ls6a``/``ls6b`` from seed 42 on, stopped at 03:20 as planned
  before they started, seeds 58 and 59 unfinished; each ``OMP_NUM_THREADS=1``, 8 to 10 minutes a seed, a CI run
  beside them 02:35 -> 02:54):
  student - control +0.0400 / -0.0064, -0.0825 / -0.0698, +0.0328 / -0.0005, -0.0521 / -0.0032, -0.0005 / +0.0137,
  +0.0662 / +0.0711, -0.0013 / +0.0289, -0.0232 / -0.0292, +0.0790 / +0.1171, +0.0249 / +0.0636, +0.0005 / -0.0299,
  -0.0129 / +0.0146, +0.0230 / -0.0234, -0.0587 / -0.0579 (seeds 28 to 41), +0.0334 / +0.0347, -0.0035 / +0.0022,
  -0.0288 / +0.0298, -0.0302 / +0.0015, +0.0791 / +0.0608, +0.0077 / +0.0250, +0.0201 / -0.0141, -0.0224 / -0.0072,
  -0.0048 / -0.0134, -0.0298 / -0.0544, -0.0578 / -0.1047, -0.0185 / -0.0018, -0.0044 / -0.0094, +0.0232 / +0.0270,
  +0.0059 / -0.0072, +0.0816 / +0.0692 (42 to 57). Over the 30: IoU +0.0029 +- 0.0076 (14/30), F1 +0.0042 +- 0.0083
  (14/30); over the 44 seeds after the first 11: IoU +0.0069 +- 0.0066 (23/44), F1 +0.0103 +- 0.0077 (22/44); over
  all 55: IoU +0.0047 +- 0.0056 (28/55), F1 +0.0128 +- 0.0064 (31/55), the F1 figure carried by the 11 seeds whose
  lead prompted the rest. The post hoc link of the 2026-12-05 seeds did not hold either: over seeds 28 to 41 the
  pseudo-labels' precision correlates with the gain at r = 0.23 (IoU) and 0.46 (F1); precision 0.82 or more: 4 of 6
  seeds gained IoU, 3 of 6 F1; below 0.80: 3 and 3 of 8.

Measured 2026-12-04 afternoon (2 CPU cores, no other jobs; two runs side by side, each ``OMP_NUM_THREADS=1``,
load 1.3 to 2.7), teachers near convergence:

- 14:08 -> 14:19 UTC, ``--out /tmp/pmb --epochs 72 --seeds 6`` (one teacher, the defaults otherwise; 659 s): the
  pilot's figures again to the fourth decimal (teacher 0.7487 / 0.8320, control 0.7653 / 0.8594, student
  0.7654 / 0.8538). Beside it ``--out /tmp/pma --seeds 0`` (the defaults, 308 s): teacher 0.6764 / 0.7589,
  control 0.6522 / 0.7391, student 0.6504 / 0.7464, gain -0.0019 / +0.0072. Offline, on their saved
  probabilities: town A's labelled building share 0.131 and 0.127; the teachers' share at p > 0.5 on town B's
  unlabelled scenes 0.119 and 0.118 against a true 0.124 and 0.130. Pseudo-labels (p > threshold) vs truth,
  seed 0 / seed 6: p > 0.5 IoU 0.664 / 0.735, the threshold that matches town A's share over all scenes
  (0.40 / 0.37) 0.666 / 0.742, one such threshold per scene 0.650 / 0.708, the best threshold in hindsight
  0.667 / 0.742; the hard band 0.4..0.6, over the pixels it labels, 0.701 / 0.762. The teachers' errors are
  in their ranking of pixels (roofs of a colour missed, paved lots called roofs, edges), not in a threshold.
- 14:34 -> 15:09 UTC, ``--out /tmp/e1c --epochs 72 --teachers 3 --share 0.5 --student-epochs 12 --seeds 6`` and
  ``--out /tmp/e1d ... --seeds 7`` (2,059 and 2,069 s; 168 student steps, half of every batch pseudo-labelled
  by the three teachers' ensemble): seed 6 teacher 0.7487 / 0.8320, ensemble 0.7281 / 0.8093, control 0.7624 /
  0.8502, student 0.7252 / 0.8189, gain -0.0372 / -0.0313; seed 7 teacher 0.6740 / 0.7893, ensemble 0.6994 /
  0.7984, control 0.6787 / 0.7829, student 0.6722 / 0.7984, gain -0.0065 / +0.0155. Pseudo-labels IoU 0.754 /
  0.739 (precision 0.90 / 0.80, recall 0.82 / 0.91). At convergence the ensemble's lead over one teacher is
  gone on seed 6 (-0.021) and +0.025 on seed 7, and the student keeps none of it: what the 24-epoch ensemble
  gained was mostly what the longer control gains too.

Measured 2026-12-04 morning (2 CPU cores; two runs side by side, each ``OMP_NUM_THREADS=1``; load 2 to 5.7, a CI run
beside them until 04:10 UTC), an ensemble of teachers (``selftrain.teachers``; Open Cities made its soft labels
from the mean of several runs): ``--teachers 3`` (three 24-epoch teachers per seed, ``train.seed`` + 0, 1, 2; the
pseudo-labels from their TTA-averaged ensemble; the student and the control start from the first teacher), the
defaults otherwise. Pixel IoU / object F1 on the held-out scenes:

- 03:03 -> 04:18 UTC, ``--out /tmp/st11a --teachers 3 --seeds 0 1 2 3`` and ``--out /tmp/st11b ... --seeds 6 7 8
  9`` (stopped after the fourth seed each; 19 to 35 minutes a seed): student - control (same steps, 400 vs 400)
  -0.0017 / +0.0000, +0.0116 / +0.0651, +0.0285 / +0.0192, -0.0067 / -0.0109 (seeds 0 to 3), +0.0142 / +0.0036,
  -0.0024 / +0.0056, +0.0015 / +0.0326, -0.0061 / -0.0067 (6 to 9); over the 8 seeds IoU +0.0049 +- 0.0043 (4/8),
  F1 +0.0136 +- 0.0089 (5/8): within the noise, as the single teacher's first six seeds were before they failed to
  repeat. Means over the 8 seeds: teacher 0.6057 / 0.6854, ensemble 0.6371 / 0.7240, control 0.6134 / 0.6935,
  student 0.6183 / 0.7071; the student stays below the ensemble it learnt from (IoU -0.0188 +- 0.0056, 1/8 seeds
  above it): with one pseudo-labelled batch in 5 over 4 epochs it keeps about a fifth of the ensemble's lead.
- 04:00 -> 04:31 UTC, ``--reuse /tmp/st11a --out /tmp/st11c --teachers 3 --control-budget ensemble --seeds 0 1``
  and ``--reuse /tmp/st11b --out /tmp/st11d ... --seeds 6 7``: the control also gets the two other teachers'
  steps (1,072 steps from the first teacher: the student's whole training compute; 52 epochs at lr 3e-4). The
  students were retrained and scored the same to the fourth decimal. Control 0.6778 / 0.7985, 0.6555 / 0.7786,
  0.6869 / 0.7833, 0.6643 / 0.8062 (seeds 0, 1, 6, 7): above the teacher by +0.001 to +0.107 IoU and above the
  ensemble on every seed. Student - control -0.0273 / -0.0594, -0.0621 / -0.0600, -0.0548 / -0.0774, -0.0617 /
  -0.1112: IoU -0.0515 +- 0.0082, F1 -0.0770 +- 0.0121, 0 of 4 seeds. The mechanism is the one of 2026-12-03:
  with its colour augmentation the longer labelled-only control learns the roof colours that the teachers miss
  (seed 1 held-out dark brown mean p: teacher 0.27, ensemble 0.49, control 0.75, student 0.27; seed 0 0.38, 0.32,
  0.56, 0.40). The ensemble's pseudo-labels are no better at those roofs (pseudo-label IoU 0.708 and 0.588 on seeds
  0 and 1, precision 0.86 / 0.70, recall 0.80 / 0.79).
- 04:31 -> 04:52 UTC, a pilot with teachers nearer convergence: ``--out /tmp/st11e --epochs 72 --seeds 0`` and
  ``--out /tmp/st11f --epochs 72 --seeds 6`` (one teacher, the defaults otherwise; a CI run beside them from
  04:33). Teacher 0.7312 / 0.8000 and 0.7487 / 0.8320 (the 24-epoch ones: 0.6764 / 0.7589 and 0.5797 / 0.6767),
  control 0.7353 / 0.8188 and 0.7653 / 0.8594 (+0.004 and +0.017 IoU over its teacher), student 0.7233 / 0.8102
  and 0.7654 / 0.8538: gain -0.0120 / -0.0086 and +0.0001 / -0.0056. Pseudo-labels IoU 0.737 / 0.762, precision
  0.85 / 0.91, recall 0.85 / 0.83. Two seeds only, and no sign of a gain from better teachers either.

Measured 2026-12-03 evening (2 CPU cores, no other jobs but a README walk from 19:24; two runs side by side, each
``OMP_NUM_THREADS=1``, 7 seeds each, new 24-epoch teachers, the defaults):

- 18:32 -> 19:23, load 2.0 -> 3.4, 3,028 and 3,032 s (7.2 minutes a seed per run), ``--out /tmp/st10a --seeds 6 7 8
  9 10 11 12`` and ``--out /tmp/st10b --seeds 13 ... 19``: student - control per seed in the table above; mean of
  the three models over seeds 6 to 12 teacher 0.5971 / 0.6880, control 0.6208 / 0.7059, student 0.6193 / 0.7034;
  over seeds 13 to 19 0.6311 / 0.7262, 0.6418 / 0.7470, 0.6390 / 0.7452. Pseudo-labels IoU 0.59 to 0.78, precision
  0.71 to 0.89, recall 0.67 to 0.88, 96.7 to 98.6 % of pixels labelled. The control ends above its teacher on 12 of
  the 14 seeds (by up to +0.058, seed 18), i.e. the teachers are not converged and the extra labelled steps matter;
  the student follows the control closely (|gain| <= 0.011 on 13 of 14 seeds; seed 12 -0.0196: the control learnt
  terracotta and weathered tile, held-out mean p 0.34 -> 0.51 and 0.35 -> 0.44, the student 0.39 and 0.39).
- 19:24 -> 19:49, load 2.1 -> 4.8 (the README walk beside it), 1,471 and 1,461 s, ``--reuse /tmp/st10a`` /
  ``/tmp/st10b`` with ``--low 0`` (positive pseudo-labels only: p > 0.6 -> 1, everything else ignored, so the
  teacher's blind spots are not taught as background): gain -0.0137 / -0.0285, +0.0004 / +0.0110, -0.0197 /
  -0.0130, -0.0071 / +0.0000, -0.0214 / -0.0114, -0.0081 / -0.0060, -0.0160 / -0.0401 (seeds 6 to 12), -0.0072 /
  +0.0257, -0.0029 / +0.0330, +0.0146 / +0.0048, -0.0228 / -0.0575, -0.0218 / -0.0450, -0.0108 / -0.0025, -0.0074 /
  +0.0048 (13 to 19); over the 14 seeds IoU -0.0103 +- 0.0027 (2/14), F1 -0.0089 +- 0.0070 (5/14). 852 to 939
  pseudo chips, 9.7 to 13.4 % of their pixels labelled (precision of the roof labels 0.71 to 0.89). Without
  background labels from town B the student calls more of its background building (held-out FP seed 6: control
  11,892, student 18,836) and finds no more of the missed roofs (seed 6 dark brown mean p 0.64 both).

Measured 2026-12-03 15:00 to 17:19 UTC (2 shared CPU cores, 2 threads, three other agents' jobs), new
24-epoch teachers (the defaults) in ``--out /tmp/st9/teachers``:

- 15:02 -> 15:40, load 0.1 -> 5.1, ``--out /tmp/st9/teachers --seeds 2 3 4 5`` (the defaults), stopped after
  seed 2 (seed 3's teacher alone would have taken another 27 minutes): seed 2 teacher 0.5291 / 0.6082,
  control 0.5110 / 0.5918, student 0.5333 / 0.6184, gain +0.0223 / +0.0266.
- 15:40 -> 15:53, load 5.1 -> 6.2, 727 s, ``--reuse /tmp/st9/teachers --seeds 2 --low 0.1 --high 0.9``: the
  same control to the fourth decimal, student 0.5322 / 0.6180, gain +0.0212 / +0.0262. Pseudo: IoU 0.695,
  P 0.85, R 0.79 (87.1 %). The teacher misses dark brown on the unlabelled scenes 26/27 (mean p 0.20) and on
  the held-out 9/9 (0.13); so do the control and the student (0.15, 0.16). FP (of 0.51 M background pixels):
  teacher 35,333, control 33,769, student 32,105. The control ends 0.018 below its teacher, the student 0.004 above.
- 15:53 -> 16:20, load 6.2 -> 2.9 (8.6 in between), 1,651 s, ``--out /tmp/st9/teachers --seeds 3`` (the defaults,
  a new teacher): teacher 0.5961 / 0.6389, control 0.5804 / 0.6348, student 0.5777 / 0.6364, gain -0.0027 /
  +0.0016. Pseudo: IoU 0.608, P 0.76, R 0.75 (97.3 %). Held-out roofs missed: weathered tile teacher 15/19,
  control 16/19, student 18/19 (mean p 0.28); FP teacher 16,283, control 19,751, student 17,025.
- 16:26 -> 16:30, load 1.3 -> 2.6, 236 s, ``--reuse /tmp/st9/teachers --seeds 3 --low 0.1 --high 0.9``: the same
  control, student 0.5752 / 0.6408, gain -0.0052 / +0.0060.
- 16:30 -> 16:37, load 1.7 -> 3.9, ``--out /tmp/st9/teachers --seeds 4`` (the defaults, a new teacher): teacher
  0.6145 / 0.6960, control 0.6116 / 0.6618, student 0.6152 / 0.6715, gain +0.0036 / +0.0097.
- 16:43 -> 16:54, load 1.9 -> 5.1, ``--reuse /tmp/st9/teachers --seeds 4 --low 0.1 --high 0.9``: student 0.6153 /
  0.6691, gain +0.0037 / +0.0073; pseudo IoU 0.697, P 0.93, R 0.74 (89.8 %).
- 16:54 -> 17:11, load 5.1 -> 2.4, ``--out /tmp/st9/teachers --seeds 5`` (the defaults, a new teacher): teacher
  0.5068 / 0.6081, control 0.5312 / 0.6148, student 0.5255 / 0.6284, gain -0.0057 / +0.0135; pseudo IoU 0.614,
  P 0.76, R 0.77 (97.1 %); the teacher misses dark brown on 18 of 26 unlabelled roofs (mean p 0.35).
- 17:11 -> 17:19, load 2.4 -> 3.8, ``--reuse /tmp/st9/teachers --seeds 5 --low 0.1 --high 0.9``: student 0.5217 /
  0.6327, gain -0.0095 / +0.0178; pseudo IoU 0.748, P 0.91, R 0.81 (84.5 %).

Measured 2026-12-03 afternoon (2 shared CPU cores, 2 threads; load average at start -> end of each run),
partial shift, ``--augment colour``, 24-epoch teachers trained once by the first run below (``--out
/tmp/st8/teachers``, the defaults) and reused (``--reuse /tmp/st8/teachers``) by the others. Training is
reproducible within these runs: every reuse retrained the same control and got the same scores to the
fourth decimal. The teachers are not the morning's (same options; 0.6545 and 0.6005 against 0.684 and
0.516), so the morning's and the afternoon's figures are compared within their own runs only. Pixel IoU /
object F1 on the 4 held-out scenes; "pseudo" as below; "FP" = held-out background pixels called building
(p > 0.5; 0.51 M background pixels per seed):

- 11:35 -> 11:47 UTC, load 0.5 -> 3.0, 693 s, ``--out /tmp/st8/teachers`` (the defaults: hard 0.4..0.6,
  every 5, 4 student epochs at 3e-4): teachers 0.6545 / 0.7375 and 0.6005 / 0.6974; control 0.6689 /
  0.7770 and 0.6027 / 0.6936; student 0.6673 / 0.7758 and 0.6175 / 0.7266; gain seed 0 -0.0017 / -0.0012,
  seed 1 +0.0149 / +0.0330. Pseudo: seed 0 IoU 0.675, P 0.80, R 0.81 (97.8 % labelled), seed 1 0.569,
  P 0.78, R 0.68 (97.1 %). FP: seed 0 teacher 17,599, control 12,076, student 13,431; seed 1 18,547,
  19,469, 15,506. The teacher's unlabelled roofs missed at mean p < 0.5: dark brown 8/15 (seed 0) and
  34/34 (seed 1, mean p 0.08: not one pixel of it above 0.6, so no band can make it a positive label),
  weathered tile 5/35 and 23/26. Seed 1's gain is the student calling less of town B's background building
  (in the unlabelled scenes the teacher's false positives are mostly whole objects: 104 and 108 components
  over 50 px more than 2 px from any roof, presumably the building-coloured paved lots); it finds no more roofs
  (dark brown 11/11 and weathered tile 12/12 held-out roofs still missed). On seed 0 the control's extra
  labelled steps cut the false positives more than the student's mix did.
- 11:48 -> 12:00, load 2.2 -> 3.7, 680 s, ``--low 0.05`` (ignore 0.05..0.6 instead of calling p < 0.4
  background): gain seed 0 -0.0045 / -0.0023, seed 1 +0.0094 / +0.0368 (student 0.6644 / 0.7746 and
  0.6121 / 0.7304). Pseudo: seed 0 0.750, P 0.80, R 0.93 (88.9 %), seed 1 0.734, P 0.78, R 0.92 (76.5 %).
  FP seed 0 14,448, seed 1 17,354 (both more than the default student's): the band also stops teaching the
  0.05..0.4 background (about 9 % of seed 0's, 20 % of seed 1's) as background, and the student's seed-0 dark
  brown mean p on held-out roofs rises only 0.45 -> 0.47 (6/12 missed, as the control).
- 12:01 -> 12:15, load 2.6 -> 4.6, 823 s, ``--low 0.1 --high 0.9`` (only confident roofs are roofs): gain
  seed 0 +0.0001 / -0.0012, seed 1 +0.0141 / +0.0324 (student 0.6690 / 0.7758 and 0.6168 / 0.7260).
  Pseudo: seed 0 0.808, P 0.92, R 0.87 (88.3 %), seed 1 0.680, P 0.95, R 0.71 (82.2 %). FP seed 0 12,617
  (the control 12,076), seed 1 14,620 (the control 19,469): the high threshold keeps most of the teacher's false
  positives out of the roof labels (unlabelled background labelled roof: seed 0 2.7 % -> 0.75 %, seed 1
  2.4 % -> 0.26 %); seed 0 is level with its control.
- 12:17 -> 12:57, load 4.5 -> 2.5 (7 in between), 2,298 s, ``--low 0.1 --high 0.9 --share 0.5
  --student-epochs 8`` (232 steps each for the student and the control): gain seed 0 +0.0150 / +0.0348,
  seed 1 -0.0124 / -0.0020 (control 0.6608 / 0.7681 and 0.6274 / 0.7466, student 0.6759 / 0.8029 and
  0.6150 / 0.7445); pseudo as the previous run. Seed 0: the student finds more roofs than the control
  (held-out dark brown missed 4/12 vs 7/12, weathered tile 1/16 vs 4/16; FP 14,961 vs 14,835). Seed 1: the
  longer labelled-only control LEARNS the colours its teacher missed (held-out dark brown mean p 0.08 ->
  0.41, 4/11 found; weathered tile 0.28 -> 0.53, 8/12 found; its colour augmentation eventually covers
  them), while the student is held at the teacher's blind spot by its pseudo-labels (dark brown 0.03,
  weathered tile 0.15, none found; 77 % of the unlabelled dark-brown pixels were labelled background even at
  low 0.1) and only cuts false positives (11,495 vs 18,676). This is the mechanism by which self-training
  loses here: where the teacher is undertrained, more labelled steps fix what pseudo-labels freeze.
- 12:58 -> 13:32, load 0.8 -> 1.8, ``--student-init scratch --student-epochs 24 --student-lr 0
  --low 0.1 --high 0.9`` (the noisy student proper: student and control from the teacher's own init, 24
  epochs at the teacher's lr 3e-3, 384 steps each, every 5): seed 0 control 0.6795 / 0.7692, student 0.6935
  / 0.7958, gain +0.0140 / +0.0266; the student finds more roofs (held-out dark brown mean p 0.62 vs 0.52,
  weathered tile 0.87 vs 0.73 and 0/16 missed vs 3/16) and calls a little more background building (FP
  16,951 vs 15,195). Seed 1 (done 13:32): control 0.5972 / 0.7110, student 0.5559 / 0.6837, gain
  -0.0413 / -0.0273: this student does find more of the missed roofs (held-out weathered tile 6/12 missed
  vs the control's 11/12, dark brown mean p 0.30 vs 0.12) but calls far more background building (FP 30,965
  vs 18,974). 2,021 s for both seeds.

Measured 2026-12-03 morning (2 shared CPU cores, 2 threads, other agents' jobs running: load average 5 to 9),
partial shift with the dark-brown roof (see :data:`~eoseg.demo.town.PARTIAL_STYLE`), ``--augment colour``,
24-epoch teachers trained once (``--out /tmp/st/r1``, the first run below) and reused by the others. Pixel
IoU / object F1 on the 4 held-out town-B scenes; "pseudo" = the pseudo-labels against the truth of the 8
unlabelled scenes (IoU, precision, recall over the pixels that kept a label); 968 pseudo chips each time:

- teachers: seed 0 0.684 / 0.777, seed 1 0.516 / 0.612 (town-A validation IoU at the last epoch 0.620 on
  seed 0, still rising by 0.01 an epoch; 0.399 on seed 1, flat over the last 5 epochs). Pseudo-labels (hard
  rule): seed 0 IoU 0.718, P 0.85, R 0.82, 98 % of pixels labelled; seed 1 0.520, P 0.66, R 0.71, 96 %. The
  teacher misses (mean p < 0.5) dark brown 9/15 and 18/34 roofs, and on seed 1 also terracotta 25/28 (a
  town-A colour, under the other sun) and weathered tile 14/26.
- ``--rule hard --every 5``, students and control at the teacher's lr 3e-3 (a new one-cycle warm-up from
  the teacher; run 1, both seeds, 1,457 s with the teachers, load 9.1 -> 7.2): control 0.702 / 0.843 and
  0.509 / 0.591, student 0.669 / 0.768 and 0.507 / 0.580; gain seed 0 -0.033 / -0.075, seed 1 -0.002 /
  -0.011. The re-warm to 3e-3 dropped town-A validation IoU from the teacher's 0.620 to 0.43 (control) and
  0.48 (student) in 4 epochs (seed 0): what was compared was the recovery from it.
- the same at ``--student-lr 3e-4`` (seed 0: 912 s, load 4.5 -> 6.7; seed 1: 1,223 s, load 5.6 -> 9.1;
  one seed per invocation, run in parallel): control 0.696 / 0.799 and 0.546 / 0.616, student 0.687 /
  0.799 and 0.542 / 0.599; gain seed 0 -0.008 / +0.000, seed 1 -0.004 / -0.018. The control is now within
  0.03 IoU of the teacher (+0.011 and +0.030; the student +0.003 and +0.026): the extra labelled steps of
  an unconverged teacher no longer decide the comparison, and the unlabelled scenes still add nothing.
- ``--rule hard --share 0.5`` (half of every batch pseudo-labelled) at ``--student-lr 3e-4``, seed 0 (116
  steps each; 40 minutes at load 10 to 14, beside other runs of mine): control 0.698 / 0.819, student
  0.694 / 0.794, gain -0.004 / -0.024. Seed 1 was started and stopped unfinished (the session's time); a
  loss on seed 0 already keeps it from being the default. Its printed summary was lost with the stop; these
  figures are the same metrics recomputed from the predictions it had saved (``eval/``).
- ``--rounds 2`` with the defaults (hard rule, every 5, lr 3e-4), seed 0 (869 s at load 4 to 5; 128 student
  steps, the second round pseudo-labelled by the first student): control 0.697 / 0.817, student 0.695 / 0.804,
  gain -0.002 / -0.013; round-2 pseudo-labels IoU 0.726, P 0.87, R 0.82. Seed 1 not run (time).

Measured 2026-12-02 (earlier code: light-brown roof, best checkpoints on town A's validation scene, every
student and control re-warming to lr 3e-3; seed 0 unless said, load 5 to 10): NO configuration gave a gain.

- full shift (``--shift full``), ``--augment flips --rule hard --share 0.5``, teacher 24 epochs, 64 px chips
  without overlap: control 0.391 / 0.592, student 0.357 / 0.552, gain -0.034 / -0.040; pseudo 0.372, P 0.69,
  R 0.45; the teacher misses whole new roof colours (black 44/44, sand 32/32, purple slate 41/43).
- full shift, ``--augment shuffle`` (flips, ChannelShuffle p 0.5, ToGray p 0.2), hard rule, share 0.5:
  teacher 0.647 / 0.723, control 0.640 / 0.749, student 0.646 / 0.662, gain +0.006 / -0.087; pseudo 0.699,
  P 0.81, R 0.83 (before colour transforms got the [0, 1] range, ``eoseg.data.augment.UnitRange``).
- full shift, ``--augment colour``, 8-epoch teacher, hard rule, share 0.5: teacher 0.530 / 0.562, control
  0.565 / 0.633, student 0.363 / 0.399, gain -0.202 / -0.235; with ``--rule soft --kl``: student 0.514 /
  0.624, gain -0.051 / -0.009.
- full shift, noisy student (``--augment shuffle --student-augment colour --rule soft --kl``): teacher 0.488
  / 0.526, control 0.499 / 0.582, student 0.478 / 0.534, gain -0.021 / -0.048; pseudo 0.491, P 0.70, R 0.62.
- partial shift, ``--rule soft --kl --share 0.5``, 8-epoch teacher: control 0.574 / 0.664, student 0.525 /
  0.616, gain -0.049 / -0.048; 24-epoch teachers, seeds 0 and 1 (736 s): gain -0.124 / -0.061 and -0.059 /
  -0.076, the soft-KL student under-confident (mean p on true roofs 0.59 vs the teacher's 0.78, seed 0).

Reading: colour augmentation of the TEACHER closes most of the gap to town B (full shift: pixel IoU 0.37
-> 0.65). Self-training on top of it does not add to it here: the pseudo-labels are the teacher's own
predictions made firmer (IoU 0.72 vs the teacher's 0.68 on the held-out scenes, seed 0) and the student
learns them, including the teacher's blind spots (roofs it misses are background in its pseudo-labels).
The largest single effect measured in the student / control comparison was the learning-rate schedule of
the fine-tuning, not the unlabelled data. Not measured: ``--rounds 2`` on seed 1, negatives with today's code,
more student epochs, sharpened soft labels.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import torch
from rasterio.features import rasterize

from eoseg.config.loader import config_to_dict, load_config, validate_config
from eoseg.config.schema import ExperimentConfig
from eoseg.data.prepare import prepare
from eoseg.demo.town import PARTIAL_STYLE, SHIFTED_STYLE, TRAIN_CSV, TownScene, make_town
from eoseg.geo.atomic import write_text_atomic
from eoseg.geo.products import read_probabilities
from eoseg.geo.raster import raster_info
from eoseg.inference.predictor import predict_scene
from eoseg.metrics.evaluate import evaluate, object_scores
from eoseg.models.checkpoint import load_bundle
from eoseg.post.vectorize import vectorize
from eoseg.selftrain.pseudo import SOFT_SUFFIX
from eoseg.selftrain.rounds import (
    STATE,
    control_config,
    labelling_checkpoints,
    last_steps,
    read_state,
    round_checkpoint,
    self_train,
    selftrain_folder,
)
from eoseg.training.train import train

FLIPS = [{"name": "HorizontalFlip", "p": 0.5}, {"name": "VerticalFlip", "p": 0.5}, {"name": "RandomRotate90", "p": 0.5}]
AUGMENTS = {
    "flips": FLIPS,  # the demo preset's data.augment
    "shuffle": [*FLIPS, {"name": "ChannelShuffle", "p": 0.5}, {"name": "ToGray", "p": 0.2}],
    "colour": [*FLIPS, {"name": "ChannelShuffle", "p": 0.3},
               {"name": "HueSaturationValue", "p": 0.7,
                "params": {"hue_shift_limit": 30, "sat_shift_limit": 40, "val_shift_limit": 30}},
               {"name": "RandomBrightnessContrast", "p": 0.7,
                "params": {"brightness_limit": 0.3, "contrast_limit": 0.3}}],
}
"""``--augment`` / ``--student-augment``: the demo's flips, or flips plus colour transforms (noisy student)."""
SHIFTS = {"full": SHIFTED_STYLE, "partial": PARTIAL_STYLE}
"""``--shift``: town B's style; ``full`` has only new roof colours, ``partial`` shares four of town A's."""
SMALL = ["data.chips.size=64", "data.chips.overlap=32", "model.arch_params.encoder_depth=3",
         "model.arch_params.decoder_channels=[16,16,8]"]
"""A model and chips that fit the benchmark on a loaded 2-core CPU (``--set`` overrides them)."""


def score(checkpoints: list[Path], scenes: list[TownScene], out: Path, config: ExperimentConfig) -> tuple[float, float]:
    """Micro pixel IoU and object F1 of ``checkpoints`` (one model, or an ensemble) over the held-out ``scenes``."""
    bundles = [load_bundle(checkpoint) for checkpoint in checkpoints]
    masks, truths, pairs = [], [], []
    for scene in scenes:
        result = predict_scene(bundles, {"image": scene.image}, out, config.predict, config.post, scene.id,
                               progress=False)
        polygons = out / f"{scene.id}.gpkg"
        vectorize(result.mask, polygons, prob=result.prob, min_area=config.post.min_area)
        masks.append(result.mask)
        truths.append(scene.footprints)
        pairs.append((polygons, scene.footprints))
    pixel = evaluate(masks, truths, classes=config.data.classes, objects=False)["pixel"]["micro"]["iou"]
    objects = object_scores(pairs, pixel_size=abs(raster_info(masks[0]).transform.a))["overall"]["f1"]
    return float(pixel), float(objects)


def pseudo_quality(labels: Path, scenes: list[TownScene]) -> dict[str, float]:
    """The last round's pseudo-labels (p > 0.5 where labelled) against the unlabelled scenes' true footprints:
    pixel IoU, precision, recall over the labelled pixels, and the share of pixels that kept a label."""
    tp = fp = fn = kept = total = 0
    for scene in scenes:
        with rasterio.open(labels / f"{scene.id}{SOFT_SUFFIX}") as src:
            soft, transform = src.read(1), src.transform
        footprints = gpd.read_file(scene.footprints).geometry
        truth = rasterize(((g, 1) for g in footprints), out_shape=soft.shape, transform=transform, dtype="uint8") > 0
        labelled = np.isfinite(soft)
        building = labelled & (soft > 0.5)
        tp += int((building & truth).sum())
        fp += int((building & ~truth).sum())
        fn += int((labelled & ~building & truth).sum())
        kept, total = kept + int(labelled.sum()), total + soft.size
    return {"iou": tp / max(tp + fp + fn, 1), "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "labelled": kept / max(total, 1)}


def roof_confidence(predictions: Path, scenes: list[TownScene]) -> dict[str, tuple[int, float, int]]:
    """Per roof colour of ``scenes``: buildings, the mean probability on their roofs of the predictions in
    ``predictions`` (``<scene>.prob.tif``: the teacher's TTA-averaged ones that the pseudo-labels came from, or a
    scored model's on the held-out scenes) and how many it misses (mean p < 0.5); ``"background"``: (pixels
    outside every footprint, their mean p, how many are called building at p > 0.5)."""
    per_roof: dict[str, list[float]] = {}
    background = [0, 0.0, 0]
    for scene in scenes:
        with rasterio.open(predictions / f"{scene.id}.prob.tif") as src:
            prob, transform = read_probabilities(src)[-1], src.transform
        footprints = gpd.read_file(scene.footprints)
        ids = rasterize(((g, i + 1) for i, g in enumerate(footprints.geometry)), out_shape=prob.shape,
                        transform=transform, dtype="int32")
        for i, roof in enumerate(footprints["roof"]):
            inside = prob[(ids == i + 1) & np.isfinite(prob)]
            if inside.size:
                per_roof.setdefault(str(roof), []).append(float(inside.mean()))
        outside = prob[(ids == 0) & np.isfinite(prob)]
        background = [background[0] + outside.size, background[1] + float(outside.sum()),
                      background[2] + int((outside > 0.5).sum())]
    roofs = {roof: (len(v), float(np.mean(v)), sum(p < 0.5 for p in v)) for roof, v in sorted(per_roof.items())}
    return {**roofs, "background": (background[0], background[1] / max(background[0], 1), background[2])}


def confidence_line(roofs: dict[str, tuple[int, float, int]]) -> str:
    """:func:`roof_confidence` as one line."""
    n, p, called = roofs["background"]
    return "; ".join(f"{roof} {k}, {q:.2f}, {m}" for roof, (k, q, m) in roofs.items() if roof != "background") + (
        f"; background {n} px, {p:.3f}, {called} px at p > 0.5")


TEACHER_ARGS = ("size", "labelled", "epochs", "augment", "set", "checkpoint", "teachers")
"""The options that make a seed's teacher (town A, its training, which of its checkpoints): what ``--reuse`` must
find unchanged (``set``: only its teacher keys, :func:`teacher_overrides`)."""
TEACHER = "teacher.json"
STUDENT_ONLY = ("predict", "post", "selftrain.pseudo", "selftrain.mix", "selftrain.student_epochs",
                "selftrain.student_augment", "selftrain.student_lr")
"""``--set`` keys (and the keys under them) that leave round 0 alone: the pseudo-labelling (``predict.*`` TTA,
``selftrain.pseudo``), the scoring (``predict.*``, ``post.*``) and the student rounds and the control
(``selftrain.mix``, ``selftrain.student_*``). Every other key makes another teacher: ``data.*``, ``model.*``,
``train.*``, ``optim.*``, ``selftrain.negatives`` (mined negatives join round 0's chips too) and
``selftrain.checkpoint`` (which checkpoint stands for the teacher)."""


def teacher_overrides(overrides: list[str]) -> list[str]:
    """The ``KEY=VALUE`` overrides of ``overrides`` that change the teacher: all but the :data:`STUDENT_ONLY` ones."""
    def student_only(override: str) -> bool:
        key = override.split("=", 1)[0].strip()
        return any(key == k or key.startswith(f"{k}.") for k in STUDENT_ONLY)
    return [o for o in overrides if not student_only(o)]


def teacher_record(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {"seed": seed, **{key: getattr(args, key) for key in TEACHER_ARGS}, "set": teacher_overrides(args.set)}


def reuse_teacher(earlier: Path, folder: Path, record: dict[str, Any]) -> None:
    """Start ``folder`` (a seed's self-training folder) with the finished teacher of the earlier run ``earlier``
    (one seed's folder of ``--out``): its round 0, when that run's teacher options equal ``record``."""
    found = json.loads((earlier / TEACHER).read_text()) if (earlier / TEACHER).is_file() else None
    if found != record:
        raise SystemExit(f"--reuse {earlier.parent}: {earlier / TEACHER} " + (
            f"records another teacher ({found}, this run: {record}); give the same {', '.join(TEACHER_ARGS)} "
            "(of --set, the keys that change the teacher)"
            if found else "is missing; give the --out folder of a finished run of this benchmark"))
    teacher = [r for r in read_state(earlier / "runs" / folder.name) if r["round"] == 0]
    if not teacher or not Path(teacher[0]["checkpoint"]).is_file():
        raise SystemExit(f"--reuse {earlier.parent}: no finished teacher in {earlier / 'runs' / folder.name}")
    if (folder / STATE).is_file():
        raise SystemExit(f"--reuse: {folder} already has rounds; give a new --out")
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / STATE, json.dumps(teacher, indent=2))


def gain_line(name: str, gains: list[float]) -> str:
    """``gains`` (self-trained minus control, one per seed) as their mean, its standard error (the sample
    standard deviation over sqrt(n); none for one seed) and how many seeds gained: is the gain larger than the
    seed-to-seed noise?"""
    n, mean = len(gains), float(np.mean(gains))
    se = f" +- {float(np.std(gains, ddof=1)) / math.sqrt(n):.4f} (se)" if n > 1 else " (1 seed: no se)"
    return f"gain {name} {mean:+.4f}{se}, {sum(g > 0 for g in gains)}/{n} seeds > 0"


def run_seed(args: argparse.Namespace, seed: int, out: Path) -> dict[str, Any]:
    """Teacher, control and student of one seed: their steps and held-out scores."""
    make_town(out / "town-a", seed=seed, n_scenes=args.labelled + 1, size=args.size)
    town_b = make_town(out / "town-b", seed=seed + 100, n_scenes=args.unlabelled + args.test, size=args.size,
                       holdout=args.test, nodata_border=False, style=SHIFTS[args.shift])
    unlabelled = [{"image": s.image} for s in town_b if s.split == "train"]
    test = [s for s in town_b if s.split == "holdout"]
    mix = f"selftrain.mix.every={args.every}" if not args.share else f"selftrain.mix.share={args.share}"
    overrides = [
        f"data.scenes_file={out / 'town-a' / TRAIN_CSV}", f"data.root={out / 'chips'}", f"data.folds={args.labelled}",
        f"train.out={out / 'runs'}", f"train.epochs={args.epochs}", f"train.seed={seed}", "train.tensorboard=false",
        f"selftrain.pseudo.rule={args.rule}", f"selftrain.pseudo.low={args.low:g}",
        f"selftrain.pseudo.high={args.high:g}", mix, f"selftrain.student_epochs={args.student_epochs}",
        f"selftrain.checkpoint={args.checkpoint}", f"selftrain.teachers={args.teachers}", *SMALL, *args.set,
        *([f"selftrain.student_lr={args.student_lr:g}"] if args.student_lr else []),
    ]
    if args.kl:
        overrides.append("selftrain.mix.loss={mask: {kl: 1.0}}")
    config = load_config("demo", overrides)
    raw = config_to_dict(config)
    raw["data"]["augment"] = AUGMENTS[args.augment]
    if args.student_augment != "same":
        raw["selftrain"]["student_augment"] = AUGMENTS[args.student_augment]
    config = validate_config(raw, "self-training benchmark")
    prepare(config, overwrite=True, progress=False)
    if args.reuse:
        reuse_teacher(args.reuse.resolve() / f"seed{seed}", selftrain_folder(config), teacher_record(args, seed))
    from_teacher = args.student_init == "teacher"
    rounds = self_train(config, unlabelled, args.rounds, progress=False, from_teacher=from_teacher)
    write_text_atomic(out / TEACHER, json.dumps(teacher_record(args, seed)))
    teacher, student = Path(rounds[0]["checkpoint"]), Path(rounds[-1]["checkpoint"])
    student_steps = sum(last_steps(r) for r in rounds[1:])
    teacher_steps = last_steps(rounds[0])
    ensemble = [Path(p) for p in labelling_checkpoints(rounds[0])]
    # --control-budget ensemble: the other teachers' steps too, so that the control has the student's compute
    extra = (len(ensemble) - 1) * teacher_steps if args.control_budget == "ensemble" else 0
    control = train(control_config(config, selftrain_folder(config), str(teacher) if from_teacher else None,
                                   student_steps + extra, teacher_steps // args.epochs, "control"),
                    progress=False, report=False)
    checkpoints = {"teacher": [teacher], **({"ensemble": ensemble} if len(ensemble) > 1 else {}),
                   "control": [round_checkpoint(control, config)], "self-trained": [student]}
    start = teacher_steps if from_teacher else 0  # the steps each model took from the common init
    steps = {"teacher": teacher_steps, "ensemble": teacher_steps * len(ensemble), "control": start + control.steps,
             "self-trained": start + student_steps}
    scores = {name: score(paths, test, out / "eval" / name, config) for name, paths in checkpoints.items()}
    held_out = {name: roof_confidence(out / "eval" / name, test) for name in checkpoints}
    pseudo = selftrain_folder(config) / "pseudo"
    unlabelled_scenes = [s for s in town_b if s.split == "train"]
    band = config.selftrain.pseudo  # --low/--high, or --set selftrain.pseudo.* after them
    return {"seed": seed, "band": f"{band.rule} {band.low:g}..{band.high:g}" if band.rule == "hard" else band.rule,
            "steps": steps, "scores": scores, "pseudo_chips": rounds[-1]["pseudo_chips"],
            "pseudo": pseudo_quality(pseudo / f"round{args.rounds}" / "labels", unlabelled_scenes),
            "roofs": roof_confidence(pseudo / "round1" / "predictions", unlabelled_scenes), "held_out": held_out,
            "test": [s.id for s in test]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--shift", default="partial", choices=list(SHIFTS), help="town B's style (SHIFTS)")
    parser.add_argument("--size", type=int, default=384, help="scene size in pixels (0.5 m)")
    parser.add_argument("--labelled", type=int, default=3, help="labelled town-A scenes (one validates)")
    parser.add_argument("--unlabelled", type=int, default=8, help="unlabelled town-B scenes")
    parser.add_argument("--test", type=int, default=4, help="held-out labelled town-B scenes")
    parser.add_argument("--epochs", type=int, default=24, help="epochs of the teacher")
    parser.add_argument("--rule", default="hard", choices=["soft", "hard", "image"])
    parser.add_argument("--low", type=float, default=0.4,
                        help="selftrain.pseudo.low (hard rule: p < low -> 0); --set selftrain.pseudo.low= overrides it")
    parser.add_argument("--high", type=float, default=0.6,
                        help="selftrain.pseudo.high (hard rule: p > high -> 1, the band between ignored)")
    parser.add_argument("--every", type=int, default=5, help="selftrain.mix.every (one pseudo batch every k)")
    parser.add_argument("--share", type=float, default=0.0, help="selftrain.mix.share (0: use --every)")
    parser.add_argument("--kl", action="store_true", help="KL loss on the soft labels (selftrain.mix.loss)")
    parser.add_argument("--student-epochs", type=int, default=4, help="selftrain.student_epochs")
    parser.add_argument("--student-lr", type=float, default=3e-4,
                        help="selftrain.student_lr of the students and the control (0: optim.lr, the teacher's)")
    parser.add_argument("--student-init", default="teacher", choices=["teacher", "scratch"],
                        help="teacher: students and control fine-tune the teacher (self-train --from-teacher); "
                             "scratch: they start from the teacher's own init (model.init_checkpoint, train.seed), "
                             "the noisy student proper (give --student-epochs as the teacher's, --student-lr 0)")
    parser.add_argument("--augment", default="colour", choices=list(AUGMENTS), help="data.augment (teacher, control)")
    parser.add_argument("--student-augment", default="same", choices=["same", *AUGMENTS],
                        help="selftrain.student_augment (the student and the control; same: data.augment)")
    parser.add_argument("--checkpoint", default="last", choices=["best", "last"],
                        help="selftrain.checkpoint: which checkpoint of the teacher, the students and the control "
                             "is scored (best on town A's validation scene, or the last)")
    parser.add_argument("--teachers", type=int, default=1,
                        help="selftrain.teachers: teachers trained in round 0 (seeds train.seed + k) whose averaged "
                             "predictions pseudo-label round 1; the students and the control start from the first; "
                             "> 1 also scores their ensemble")
    parser.add_argument("--control-budget", default="student", choices=["student", "ensemble"],
                        help="student: the control trains as many steps as the student(s); ensemble: also the "
                             "steps of the --teachers beyond the first (the student's whole training compute)")
    parser.add_argument("--rounds", type=int, default=1, help="student rounds (each pseudo-labels with the last)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more config overrides; selftrain.pseudo/mix/student_*, predict and post keys leave the "
                             "teacher alone (STUDENT_ONLY) and so work with --reuse")
    parser.add_argument("--reuse", type=Path, default=None, metavar="DIR",
                        help="the --out of an earlier run: take its teachers (same teacher options and teacher "
                             "--set keys) instead of training them again, to compare student settings faster")
    args = parser.parse_args()
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            results.append(run_seed(args, seed, (args.out or Path(tmp)).resolve() / f"seed{seed}"))
            # at once, so that a run stopped in a later seed keeps the finished seeds' figures
            print(f"seed {seed} finished: " + "; ".join(
                f"{name} {iou:.4f} / {f1:.4f}" for name, (iou, f1) in results[-1]["scores"].items())
                + " (pixel IoU / object F1)", flush=True)
    seconds = time.perf_counter() - started
    mix = f"every {args.every}" if not args.share else f"share {args.share:g}"
    print(f"self-training benchmark: {args.labelled} labelled town-A scenes, {args.unlabelled} unlabelled and "
          f"{args.test} held-out town-B scenes ({args.shift} shift) of {args.size} px; {args.teachers} x "
          f"{args.epochs} teacher epochs, {args.student_epochs} student epochs x {args.rounds} round(s) at lr "
          f"{args.student_lr or 'of the teacher'}, augment {args.augment} (student "
          f"{args.student_augment}) from {args.student_init}, rule {results[0]['band']}, mix {mix}"
          f"{', KL' if args.kl else ''}, {args.checkpoint} checkpoints, control budget {args.control_budget}; "
          f"seeds {args.seeds}; "
          f"overrides {SMALL + args.set}; "
          f"{torch.get_num_threads()} threads, {seconds:.0f} s")
    print(f"{'seed':>4} {'model':>12} {'steps':>6} {'pixel IoU':>10} {'object F1':>10}")
    for r in results:
        for name, (iou, f1) in r["scores"].items():
            print(f"{r['seed']:>4} {name:>12} {r['steps'][name]:>6} {iou:>10.4f} {f1:>10.4f}")
    names = list(results[0]["scores"])
    budget = "same steps" if args.control_budget == "student" else "control of the whole compute"
    mean = {n: [sum(r["scores"][n][i] for r in results) / len(results) for i in (0, 1)] for n in names}
    for n in names:
        print(f"mean {n:>12} {'':>6} {mean[n][0]:>10.4f} {mean[n][1]:>10.4f}")
    for r in results:
        (ci, cf), (si, sf), q = r["scores"]["control"], r["scores"]["self-trained"], r["pseudo"]
        print(f"seed {r['seed']}: self-trained - labelled-only ({budget}): IoU {si - ci:+.4f}, object F1 "
              f"{sf - cf:+.4f} ({r['pseudo_chips']} pseudo chips; pseudo-labels vs truth: "
              f"IoU {q['iou']:.3f}, precision {q['precision']:.3f}, recall {q['recall']:.3f}, "
              f"{q['labelled']:.1%} of pixels labelled)")
    for r in results:
        print(f"seed {r['seed']}: the teacher on town B's unlabelled roofs (buildings, mean p, missed at p < 0.5): "
              + confidence_line(r["roofs"]))
        for name, roofs in r["held_out"].items():
            print(f"seed {r['seed']}: {name} on the held-out roofs: {confidence_line(roofs)}")
    if "ensemble" in mean:
        gains = [[r["scores"]["self-trained"][i] - r["scores"]["ensemble"][i] for r in results] for i in (0, 1)]
        print(f"over seeds {args.seeds}: self-trained - the teachers' ensemble: {gain_line('IoU', gains[0])}; "
              f"{gain_line('object F1', gains[1])}")
    (ci, cf), (si, sf) = mean["control"], mean["self-trained"]
    print(f"mean: self-trained - labelled-only ({budget}): IoU {si - ci:+.4f} (ratio {si / max(ci, 1e-9):.3f}), "
          f"object F1 {sf - cf:+.4f}")
    gains = [[r["scores"]["self-trained"][i] - r["scores"]["control"][i] for r in results] for i in (0, 1)]
    print(f"over seeds {args.seeds}: {gain_line('IoU', gains[0])}; {gain_line('object F1', gains[1])}")


if __name__ == "__main__":
    main()
