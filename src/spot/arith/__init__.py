"""The arith world, for real pretrained instruct models: a plugin nothing else imports, like spot.toy.

Plain-English arithmetic word problems generated and checked locally (tasks.py: stories, named difficulty
levels L1..L5, seeded splits disjoint by construction), an answer check for free text (checker.py: the last
`Answer: N` or `\\boxed{N}`), the held-out suites (suites.py: in-domain, validation, OOD = longer chains, and a
non-math IFEval-shaped prior probe from prior.py, which also holds held-out chat prompts for a KL probe), the
training problems for rectify.py (problems.py) and a programmatic minimal-edit Oracle (oracle.py). Configs:
problems=arith, oracle=arith, eval=arith (arith_in_domain, arith_ood, arith_prior) and eval=arith_val. The
prompt carries its own instruction, so a model runs it with problem_template "{prompt}".
"""
