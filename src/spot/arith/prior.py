"""The arith world's non-math prior probes: what a small instruct model could do before post-training.

- `prior_items`: IFEval-shaped items (an everyday request with one verifiable instruction: all capitals, no
  commas, fewer than 20 words, 3 bullet points, ...), scored by lm-eval's IFEval checks like eval=ifeval. Every
  instruction id is in lm-eval's registry and needs no NLTK data (the sentence count, which does, is left out).
- `kl_prompts`: held-out everyday chat prompts for a KL-to-base probe, none of them a prior item's request.
"""

from __future__ import annotations

import random

# Everyday requests, crossed with INSTRUCTIONS.
REQUESTS = (
    "Describe a cat.", "Tell me about the ocean.", "Describe your perfect weekend.", "Write a short note to a friend.",
    "Explain why people enjoy music.", "Describe a rainy day.", "Tell me about your favorite food.",
    "Describe a busy city street.", "Write a short story about a lost dog.", "Explain how to make a cup of tea.",
    "Describe the moon at night.", "Tell me about a good book.", "Describe a walk in the forest.",
    "Write a thank-you message to a teacher.", "Explain why sleep is important.", "Describe a birthday party.",
    "Tell me about trains.", "Describe a garden in spring.", "Write a short poem about the sea.",
    "Explain how to plant a tree.", "Describe a snowy morning.", "Tell me about your home town.",
    "Describe a friendly robot.", "Write an invitation to a picnic.", "Explain why people keep pets.",
    "Describe a market on a sunny day.", "Tell me about the stars.", "Describe a cozy kitchen.",
    "Write a short review of a movie you like.", "Explain how to stay calm before a test.",
)

# (lm-eval instruction id, its kwargs, the sentence appended to the request)
INSTRUCTIONS = (
    ("change_case:english_capital", {}, "Answer in all capital letters."),
    ("change_case:english_lowercase", {}, "Write your whole reply in lowercase letters, with no capital letters."),
    ("punctuation:no_comma", {}, "Do not use any commas in your reply."),
    ("startend:end_checker", {"end_phrase": "That is all."},
     'End your reply with the exact words "That is all." and write nothing after them.'),
    ("length_constraints:number_words", {"num_words": 20, "relation": "less than"}, "Answer in fewer than 20 words."),
    ("length_constraints:number_words", {"num_words": 50, "relation": "at least"}, "Write at least 50 words."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3},
     'Write exactly 3 bullet points, each on its own line starting with "* ".'),
    ("detectable_format:title", {}, "Give your reply a title wrapped in double angular brackets, like <<My Title>>."),
    ("startend:quotation", {}, "Wrap your whole reply in double quotation marks."),
    ("keywords:existence", {"keywords": ["happy"]}, 'Use the word "happy" in your reply.'),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "At the end of your reply, add a postscript starting with P.S."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "Highlight at least 2 parts of your reply with markdown, like *this part*."),
)


def prior_items(n: int, seed: int = 0) -> list[dict]:
    """`n` IFEval rows {"key", "prompt", "instruction_id_list", "kwargs"}: a seeded draw without repeats from
    every (request, instruction) pair (360), so the items depend only on the seed and n."""
    pairs = [(r, i) for r in REQUESTS for i in INSTRUCTIONS]
    if not 1 <= n <= len(pairs):
        from spot.errors import ConfigError

        raise ConfigError(f"arith prior n={n}: must be in [1, {len(pairs)}] (requests x instructions)")
    random.Random(f"spot-arith/prior/{seed}").shuffle(pairs)
    return [{"key": k, "prompt": f"{request} {text}", "instruction_id_list": [iid], "kwargs": [dict(kwargs)]}
            for k, (request, (iid, kwargs, text)) in enumerate(pairs[:n])]


# Held-out everyday chat prompts, none a request above and none about numbers: what the model says where
# post-training has nothing to teach it.
KL_PROMPTS = (
    "What is a good way to start the morning?", "Describe the smell of fresh bread.",
    "Why do leaves change color in autumn?", "Write a short greeting for a new neighbor.",
    "What makes a good friend?", "Describe a quiet library.", "How do birds build their nests?",
    "Tell me about a favorite childhood game.", "What should I pack for a beach trip?",
    "Describe the sound of rain on a roof.", "Why do people like to travel?", "Write a short lullaby.",
    "How can I be kinder to others?", "Describe an old castle.", "What is it like to ride a bicycle?",
    "Give me some tips for a picnic.", "Describe a sunset over the mountains.", "Why is reading good for you?",
    "Write a short apology to a friend.", "What do bees do all day?", "Describe a bakery in the morning.",
    "How do I take care of a houseplant?", "Tell me about a famous painting.", "What is fun to do on a rainy day?",
    "Describe a lighthouse.", "Why do dogs wag their tails?", "Write a short welcome speech for a club.",
    "What makes a room feel cozy?", "Describe a farm in summer.", "How can I learn to draw?",
    "Tell me about penguins.", "What should I say to cheer up a friend?", "Describe a thunderstorm.",
    "Why do people plant flowers?", "Write a postcard from the mountains.", "What is a good bedtime routine?",
    "Describe a school playground.", "How do fish breathe under water?", "Tell me about a river.",
    "What is the best thing about winter?", "Describe a train station.", "Why do we dream?",
    "Write a short note to say goodbye.", "How do I make new friends at school?", "Describe a field of flowers.",
    "What do owls eat?", "Tell me about a kind person you admire.", "Describe a carnival at night.",
    "How can I keep my desk tidy?", "Why is the sky blue?", "Write a short riddle about a tree.",
    "Describe the taste of a lemon.", "What is a fun hobby to try?", "Tell me about the desert.",
    "Describe a snowman.", "How do I say thank you politely?", "What makes a story exciting?",
    "Describe a harbor with boats.", "Why do cats purr?", "Write a short wish for a happy holiday.",
)


def kl_prompts() -> list[str]:
    """The held-out non-math chat prompts (60) for a KL-to-base probe, as raw user turns."""
    return list(KL_PROMPTS)
