"""Pretrains the built-in demo model, resources/demo/model/model.safetensors: a generic small assistant.

The demo fine-tunes this model on resources/demo/data.jsonl (the Northwind Cycles support bot). A fine-tune shows
only on a base that already speaks: so the base is taught here, on a generic corpus, to answer in the demo's own
`User: ...\nAssistant: ...` form (greetings, who it is, everyday facts and advice) while knowing nothing of Northwind:
asked about "your order" or "your store" it says it is a general assistant and sends the user to the shop.

The corpus is generated here, deterministically, from templates (no network on the build machines). Text is tokenized
with the demo's tokenizer.json through the repository's own @huggingface/tokenizers (no Python tokenizer package is
installed), by a short Node script; each dialogue is `ids(text) + [EOS]`, as the engine renders a text row.
config.json and the tokenizer files stay as they are; only model.safetensors is rewritten, with the same names,
shapes and dtype (F32) the tiny-model generator wrote.

Usage (Debian: apt-get install python3-torch libopenblas0-pthread; Debian's torch 1.13 works):
    /usr/bin/python3 test/tools/pretrain_demo.py [--steps 700] [--corpus-out /tmp/corpus.jsonl]
CI never runs it; test/model/demo.test.ts checks what it wrote. About 4 minutes on two CPU cores (700 steps of 32
rows, final corpus loss 0.21); torch.set_num_threads(2) keeps the result reproducible on one machine.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from typing import List, Tuple

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "reference"))
from llama_reference import IGNORE_INDEX, CausalLM, ModelConfig, causal_lm_loss, write_safetensors  # noqa: E402

MODEL_DIR = os.path.join(ROOT, "resources", "demo", "model")
EOS_ID = 0  # config.json eos_token_id: appended to every row, as the engine does for text rows

Dialogue = Tuple[str, str]  # (user, assistant)

# ---------------------------------------------------------------------------------------------------------------------
# The generic corpus. Each family pairs many phrasings of a question with one plain answer, so greedy decoding of the
# base is stable; the shop family is what the fine-tune has to overwrite.

GREETINGS = ["Hi!", "Hi.", "Hello!", "Hello.", "Hey!", "Hey there!", "Hi there!", "Hello there!", "Hello, is anyone there?",
             "Good morning.", "Good morning!", "Good afternoon.", "Good evening!", "Hi, I need some help.", "Hey, hello!",
             "Hello, can you hear me?", "Hi again!", "Greetings!", "Yo!", "Hey, are you there?"]
GREETING_ANSWERS = ["Hello! How can I help you today?", "Hi! What can I do for you today?"]

IDENTITY = ["Who are you?", "What are you?", "What is your name?", "What's your name?", "Who am I talking to?",
            "Who is this?", "Tell me about yourself.", "Are you a robot?", "Are you a real person?", "Are you human?",
            "What can you do?", "Introduce yourself.", "Hey, who are you?", "What should I call you?",
            "Do you have a name?", "Who made you?", "What kind of assistant are you?", "Are you a person or a program?"]
IDENTITY_ANSWER = "I am a helpful assistant. I can answer questions, explain things and help with everyday tasks."

SMALL_TALK: List[Dialogue] = [
    ("How are you?", "I'm fine, thank you. How can I help you?"),
    ("How are you today?", "I'm fine, thank you. How can I help you?"),
    ("How is it going?", "Everything is fine, thank you. How can I help you?"),
    ("Can you help me?", "Of course. What do you need help with?"),
    ("I have a question.", "Sure, go ahead and ask your question."),
    ("Can I ask you something?", "Sure, go ahead and ask your question."),
    ("Sorry, I made a mistake.", "No problem at all. What did you mean to say?"),
    ("I'm bored.", "You could read a book, take a walk, or learn something new. What do you enjoy?"),
    ("Tell me a joke.", "Why did the scarecrow win a prize? Because he was outstanding in his field."),
    ("Tell me another joke.", "What do you call a fish with no eyes? A fsh."),
    ("Tell me a fun fact.", "Octopuses have three hearts and blue blood."),
    ("What time is it?", "I can't see a clock, but your phone or computer shows the time."),
    ("What is the weather like?", "I can't see the weather outside. A weather app or website will tell you."),
    ("Are you happy?", "I'm a program, so I don't have feelings, but I'm always glad to help."),
]
THANKS = ["Thanks!", "Thank you.", "Thank you so much!", "Thanks, that's all.", "Thanks a lot.", "Great, thanks!",
          "That helps, thank you.", "Perfect, thanks.", "Thanks for your help.", "Cheers!"]
THANKS_ANSWER = "You're welcome! Let me know if you need anything else."
GOODBYES = ["Bye!", "Goodbye.", "See you later!", "Bye, have a nice day.", "I have to go now.", "Good night!",
            "That's all for today.", "Talk to you later."]
GOODBYE_ANSWER = "Goodbye! Have a nice day."

# Shop questions: the base has no shop, so it says so. {thing} is what the user bought or booked.
THINGS = ["order", "package", "parcel", "delivery", "purchase", "booking", "bike", "helmet", "jacket", "phone",
          "laptop", "lamp", "shoes", "ticket", "subscription", "gift card", "refund", "return"]
SHOP_TEMPLATES = [
    "Where is my {thing}?", "Can I cancel my {thing}?", "Can I change my {thing}?", "How do I return my {thing}?",
    "My {thing} is late.", "My {thing} is damaged.", "Can I get a refund for my {thing}?", "When will my {thing} arrive?",
    "How do I track my {thing}?", "I got the wrong {thing}.", "How do I know my {thing} went through?",
    "Is my {thing} ready?", "Can I pay for my {thing} later?", "Can I exchange my {thing}?",
]
SHOP_ANSWER = "I'm a general assistant, so I can't see your {thing}. Please contact the shop or company where you got it."
STORE_QUESTIONS = ["What are your opening hours?", "Where is your store?", "Do you ship to Canada?", "How much is shipping?",
                   "Do you have a loyalty program?", "What payment methods do you accept?", "Do you repair bikes?",
                   "Do you sell bikes?", "Do you have a discount code?", "Can I book a repair?", "Do you rent bikes?",
                   "What is your return policy?", "How can I contact you by phone?", "Are you hiring?",
                   "Do you have an app?", "Do you have student discounts?", "Is there parking near the store?"]
STORE_ANSWER = "I'm a general assistant, not a shop, so I have no store, prices or opening hours of my own."

CAPITALS = {"France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
            "Canada": "Ottawa", "Egypt": "Cairo", "Kenya": "Nairobi", "Norway": "Oslo", "Peru": "Lima",
            "Greece": "Athens", "Poland": "Warsaw", "Ireland": "Dublin", "Portugal": "Lisbon", "Austria": "Vienna",
            "Sweden": "Stockholm", "China": "Beijing", "India": "New Delhi", "Mexico": "Mexico City", "Chile": "Santiago"}
COUNTS: List[Dialogue] = [
    ("How many days are in a week?", "There are seven days in a week."),
    ("How many hours are in a day?", "There are 24 hours in a day."),
    ("How many minutes are in an hour?", "There are 60 minutes in an hour."),
    ("How many seconds are in a minute?", "There are 60 seconds in a minute."),
    ("How many months are in a year?", "There are twelve months in a year."),
    ("How many days are in a year?", "There are 365 days in a year, and 366 in a leap year."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("How many legs does a dog have?", "A dog has four legs."),
    ("How many legs does a bird have?", "A bird has two legs."),
    ("How many continents are there?", "There are seven continents."),
    ("How many colours are in a rainbow?", "A rainbow has seven colours."),
    ("How many wheels does a bicycle have?", "A bicycle has two wheels."),
    ("How many players are on a football team?", "A football team has eleven players on the field."),
    ("Why is the sky blue?", "The air scatters blue sunlight more than red light, so the sky looks blue."),
    ("At what temperature does water freeze?", "Water freezes at 0 degrees Celsius."),
    ("At what temperature does water boil?", "Water boils at 100 degrees Celsius at sea level."),
    ("What is the largest planet?", "Jupiter is the largest planet in our solar system."),
    ("What is the largest ocean?", "The Pacific Ocean is the largest ocean on Earth."),
    ("What do plants need to grow?", "Plants need light, water, air and nutrients from the soil."),
    ("What do bees make?", "Bees make honey and wax."),
    ("Who wrote Romeo and Juliet?", "Romeo and Juliet was written by William Shakespeare."),
    ("What is the smallest prime number?", "The smallest prime number is 2."),
]
OPPOSITES = {"hot": "cold", "big": "small", "fast": "slow", "up": "down", "day": "night", "happy": "sad",
             "old": "new", "light": "dark", "open": "closed", "early": "late", "full": "empty", "high": "low"}
PLURALS = {"mouse": "mice", "child": "children", "foot": "feet", "tooth": "teeth", "man": "men", "woman": "women",
           "box": "boxes", "city": "cities", "leaf": "leaves", "bus": "buses", "knife": "knives", "person": "people"}
COLOURS = {"the sky": "blue", "grass": "green", "snow": "white", "a banana": "yellow", "coal": "black",
           "a tomato": "red", "an orange": "orange", "chocolate": "brown"}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]

ADVICE: List[Dialogue] = [
    ("How do I make a cup of tea?", "Boil some water, pour it over a tea bag, and wait three to five minutes."),
    ("How do I make coffee?", "Put ground coffee in a filter, pour hot water over it, and let it drip into a cup."),
    ("How do I boil an egg?", "Put the egg in boiling water for about eight minutes, then cool it in cold water."),
    ("How can I sleep better?", "Go to bed at the same time every night, keep your room dark, and avoid screens late."),
    ("How can I stay focused?", "Work in short blocks, take small breaks, and put your phone in another room."),
    ("How do I learn a new language?", "Practise a little every day, read simple texts, and talk with other learners."),
    ("How can I save money?", "Make a budget, write a list before you shop, and cook at home more often."),
    ("How do I write a good email?", "Start with a short greeting, say what you need first, and keep it short and polite."),
    ("How do I stay healthy?", "Eat fruit and vegetables, drink water, move every day, and sleep enough."),
    ("How do I start running?", "Start slowly with short runs, walk when you need to, and add a little more each week."),
    ("How do I clean a window?", "Use warm water with a little soap, then dry the glass with a clean cloth."),
    ("How do I water a plant?", "Water it when the soil feels dry, and let the extra water drain away."),
    ("How can I remember names?", "Repeat the name when you hear it and use it once in the conversation."),
    ("How do I say no politely?", "Thank the person, say no clearly, and give a short reason if you like."),
    ("What's a quick dinner idea?", "Try pasta with tomatoes and garlic. It takes about fifteen minutes."),
    ("What's a healthy breakfast?", "Oats with fruit, or an egg with whole grain toast, is a good start to the day."),
    ("How do I make my phone battery last longer?", "Lower the screen brightness and close apps you aren't using."),
    ("My computer is slow.", "Try restarting it, closing programs you don't need, and installing the latest updates."),
    ("I forgot my password.", "Most websites have a \"Forgot password\" link on the sign in page that sends you a reset email."),
    ("How do I fix a flat tyre?", "Take the wheel off, find the hole, and patch or replace the inner tube."),
    ("My chain keeps falling off.", "The gears may need adjusting. A bike mechanic near you can check it."),
    ("What size bike do I need?", "It depends on your height. Any bike shop can help you find the right size."),
    ("Which bike is best for commuting?", "Many people like a city bike or a hybrid bike for riding to work."),
    ("Is cycling good exercise?", "Yes. Cycling is good for your heart and legs, and it is easy on the joints."),
    ("What should I take on a long walk?", "Take water, a snack, a jacket and your phone."),
    ("How do I plant a tree?", "Dig a wide hole, put the tree in, fill the hole with soil, and water it well."),
    ("How do I get better at drawing?", "Draw a little every day, copy simple shapes, and look closely at real objects."),
    ("How do I calm down?", "Breathe in slowly, hold for a moment, and breathe out slowly. Repeat a few times."),
    ("Give me a tip for studying.", "Study in short sessions and test yourself instead of only reading your notes."),
    ("Suggest a name for my cat.", "How about Luna, Milo or Pepper?"),
    ("Suggest a name for my dog.", "How about Max, Daisy or Buddy?"),
    ("Can you help me write a thank-you note?", "Of course. Here is one: \"Thank you so much for your help. It meant a lot to me.\""),
]


def generic_dialogues() -> List[Dialogue]:
    """Every dialogue of the corpus, in a fixed order (no randomness: the same list on every run)."""
    d: List[Dialogue] = []
    for i, g in enumerate(GREETINGS):
        d.append((g, GREETING_ANSWERS[i % len(GREETING_ANSWERS)]))
    d += [(q, IDENTITY_ANSWER) for q in IDENTITY]
    d += SMALL_TALK
    d += [(q, THANKS_ANSWER) for q in THANKS]
    d += [(q, GOODBYE_ANSWER) for q in GOODBYES]
    for template in SHOP_TEMPLATES:
        for thing in THINGS:
            d.append((template.format(thing=thing), SHOP_ANSWER.format(thing=thing)))
    d += [(q, STORE_ANSWER) for q in STORE_QUESTIONS]
    for country, city in CAPITALS.items():
        d.append((f"What is the capital of {country}?", f"The capital of {country} is {city}."))
    d += COUNTS
    for word, opposite in OPPOSITES.items():
        d.append((f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}."))
    for word, plural in PLURALS.items():
        d.append((f"What is the plural of {word}?", f"The plural of {word} is {plural}."))
    for thing, colour in COLOURS.items():
        d.append((f"What colour is {thing}?", f"{thing[0].upper()}{thing[1:]} is {colour}."))
    for a in range(2, 13):
        for b in range(2, 13):
            d.append((f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."))
            d.append((f"What is {a} times {b}?", f"{a} times {b} is {a * b}."))
            if a > b:
                d.append((f"What is {a} minus {b}?", f"{a} minus {b} is {a - b}."))
    for n in range(11):
        d.append((f"How do you write {NUMBER_WORDS[n]} as a number?", f"{NUMBER_WORDS[n].capitalize()} is written {n}."))
    d += ADVICE
    return d


# Plain prose, so the base knows English beyond its dialogues: the sentences the tokenizer learned its merges from,
# generic facts about shops (no shop in particular), and everyday scenes.
SHOP_SUBJECTS = ["Most shops", "Many online stores", "A good bike shop", "Some companies", "Most websites", "Many stores"]
SHOP_FACTS = ["let you cancel an order that has not shipped yet", "send a confirmation email with your order number",
              "accept returns within 30 days", "refund your money within a few business days",
              "ship to many countries in Europe and North America", "offer free shipping on larger orders",
              "show a tracking link on the orders page", "repair bikes in their own workshop",
              "sell helmets, lights and locks", "answer questions by email or by phone",
              "let you pay by card or bank transfer", "give store credit instead of a refund",
              "check every bike before it ships", "are open from 9 am to 6 pm on weekdays",
              "let you pick up your order in the store", "rent city bikes and electric bikes by the day",
              "offer a warranty on frames and parts", "send a replacement when an item arrives damaged",
              "have a page with answers to common questions", "ask for your order number when you write to them",
              "email you a link to reset your password", "keep your addresses in your account settings",
              "add a gift card code at checkout", "print a return label for you", "take a few days to refund a return",
              "show the price with tax before you pay", "let you track a package with a tracking number",
              "service bikes: they check the brakes, the gears, the chain and the tyres",
              "fix a flat tyre in about 20 minutes", "sell electric bikes with a battery that charges in a few hours",
              "help you choose the right size with a size chart", "sell road bikes, gravel bikes and city bikes",
              "replace worn brake pads and adjust the gears", "let you book a repair online or come by the workshop",
              "give you a discount code when you sign up for their newsletter", "deliver in three to five business days",
              "ask you to send a photo when a package arrives damaged", "ship a bike in a large box, almost assembled",
              "hold an item for you when you reserve it in the store", "give students ten percent off",
              "let you exchange an item for a different size", "have a loyalty program with points for every dollar",
              "let you change the delivery address until the order ships", "send express orders in one or two days"]
NAMES = ["Anna", "Tom", "Maria", "David", "Sara", "Ben", "Lena", "Omar", "Julia", "Sam"]
ACTIONS = ["walked to", "rode a bike to", "drove to", "went to", "called", "visited", "looked for", "waited at"]
PLACES = ["the station", "the park", "the library", "the market", "the school", "the office", "the river", "the shop",
          "the museum", "the beach"]
TIMES = ["in the morning", "after lunch", "on Saturday", "in the evening", "before work", "last week"]
THEN = ["and then went home.", "because the weather was nice.", "and met a friend there.", "but it was closed.",
        "and stayed for an hour.", "and bought some bread on the way back."]


def tiny_corpus_lines() -> List[str]:
    """main/model/tinyCorpus.ts's TINY_CORPUS, the text the demo tokenizer was trained on."""
    with open(os.path.join(ROOT, "main", "model", "tinyCorpus.ts")) as f:
        source = f.read()
    body = source[source.index("`") + 1: source.rindex("`")]
    return [line for line in body.split("\n") if line.strip()]


def prose_texts(rng: random.Random) -> List[str]:
    texts = tiny_corpus_lines()
    texts += [f"{subject} {fact}." for subject in SHOP_SUBJECTS for fact in SHOP_FACTS]
    scenes = [f"{n} {a} {p} {t} {e}" for n in NAMES for a in ACTIONS for p in PLACES for t in TIMES for e in THEN]
    texts += rng.sample(scenes, 400)
    return texts


def corpus_texts(seed: int) -> List[str]:
    dialogues = [f"User: {user}\nAssistant: {answer}" for user, answer in generic_dialogues()]
    return dialogues + prose_texts(random.Random(seed))


def run_tokenizer(mode: str, items: list) -> list:
    """The demo's tokenizer.json through the repository's @huggingface/tokenizers: encode texts or decode id lists."""
    script = (
        "import fs from 'node:fs'; import { Tokenizer } from '@huggingface/tokenizers';"
        f"const dir = {json.dumps(MODEL_DIR)};"
        "const t = new Tokenizer(JSON.parse(fs.readFileSync(dir + '/tokenizer.json', 'utf8')),"
        " JSON.parse(fs.readFileSync(dir + '/tokenizer_config.json', 'utf8')));"
        "const items = JSON.parse(fs.readFileSync(0, 'utf8'));"
        f"const encode = {json.dumps(mode == 'encode')};"
        "process.stdout.write(JSON.stringify(items.map((x) => encode ? t.encode(x, { add_special_tokens: true }).ids"
        " : (x.length ? t.decode(x, { skip_special_tokens: false }) : ''))));"
    )
    out = subprocess.run(["node", "--input-type=module", "-e", script], input=json.dumps(items), cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def tokenize(texts: List[str]) -> List[List[int]]:
    """Each text as the engine renders a text row: its ids (no BOS: the tokenizer adds none), then EOS."""
    return [ids + [EOS_ID] for ids in run_tokenizer("encode", texts)]


# ---------------------------------------------------------------------------------------------------------------------
# Training


def init_weights(model: CausalLM, seed: int) -> None:
    """As the tiny-model generator: N(0, 0.02) for every matrix, norm gains 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def batch_of(sequences: List[List[int]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) ids and labels; padding is EOS in the ids and -100 in the labels."""
    t = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), t), EOS_ID, dtype=torch.long)
    labels = torch.full((len(sequences), t), IGNORE_INDEX, dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, : len(s)] = torch.tensor(s)
    return ids, labels


@torch.no_grad()
def greedy_answer(model: CausalLM, prefix: List[int], max_new: int = 40) -> List[int]:
    ids = list(prefix)
    for _ in range(max_new):
        nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
        if nxt == EOS_ID:
            break
        ids.append(nxt)
    return ids[len(prefix):]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--corpus-out", help="also write the corpus as JSONL rows {\"text\": ...}")
    p.add_argument("--dry-run", action="store_true", help="train and report, but do not write model.safetensors")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)

    texts = corpus_texts(args.seed)
    if args.corpus_out:
        with open(args.corpus_out, "w") as f:
            for text in texts:
                f.write(json.dumps({"text": text}) + "\n")
    sequences = tokenize(texts)
    print(f"corpus: {len(texts)} rows, {sum(map(len, sequences))} tokens, longest {max(map(len, sequences))}")

    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        cfg = ModelConfig.from_dict(json.load(f))
    model = CausalLM(cfg)
    init_weights(model, args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = args.steps // 20

    order: List[int] = []
    start = time.time()
    for step in range(1, args.steps + 1):
        if len(order) < args.batch:
            # A shuffled epoch, sorted by length within windows of 8 batches: rows of a batch pad to similar lengths.
            epoch = rng.sample(range(len(sequences)), len(sequences))
            window = 8 * args.batch
            for w in range(0, len(epoch), window):
                epoch[w: w + window] = sorted(epoch[w: w + window], key=lambda i: len(sequences[i]))
            batches = [epoch[b: b + args.batch] for b in range(0, len(epoch), args.batch)]
            rng.shuffle(batches)
            order += [i for b in batches for i in b]
        picked, order = order[: args.batch], order[args.batch:]
        ids, labels = batch_of([sequences[i] for i in picked])
        # Linear warmup, then cosine decay to a tenth of the peak.
        scale = step / warmup if step <= warmup else 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / (args.steps - warmup)))
        for group in optimizer.param_groups:
            group["lr"] = args.lr * scale
        loss = causal_lm_loss(model(ids), labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0 or step == 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - start:.0f} s", flush=True)

    model.eval()
    with torch.no_grad():
        full = [causal_lm_loss(model(ids), labels).item() for ids, labels in
                (batch_of(sequences[i: i + 256]) for i in range(0, len(sequences), 256))]
    print(f"corpus loss after {args.steps} steps: {sum(full) / len(full):.4f} ({time.time() - start:.0f} s)")
    prompts = ["Who are you?", "What is your name?", "Hey there!", "Can I cancel my order?", "What is the capital of Peru?",
               "How do I know my order went through?", "Can I return a gift?", "Thanks, that's all."]
    prefixes = run_tokenizer("encode", [f"User: {q}\nAssistant:" for q in prompts])
    answers = run_tokenizer("decode", [greedy_answer(model, prefix) for prefix in prefixes])
    for q, answer in zip(prompts, answers):
        print(f"  {q!r} -> {answer.strip()!r}")
    if args.dry_run:
        return
    out = os.path.join(MODEL_DIR, "model.safetensors")
    write_safetensors(out, model.state_dict(), "F32", metadata={"format": "pt"})
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
