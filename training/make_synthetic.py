"""Write ``router/evaluation/data/synthetic_train.jsonl`` (templated easy/hard requests for training)
and ``imperatives_train.jsonl`` (short hard imperatives that only the two gates learn from).

Deterministic (no randomness): every template is crossed with its fillers. None of these texts is
in the everyday development set (``everyday_dev.jsonl``); the test suite checks that. In the
routing-data format with RouterBench's models, so it trains (and calibrates) with that group: by
assumption, an easy request is answered well by every model (quality 1 for all: nothing to gain)
and a hard one only by the premium ones (gpt-4, claude-v2, claude-v1: 1; the rest 0). Costs are
each model's mean cost per query on RouterBench.

    python training/make_synthetic.py
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "router" / "evaluation" / "data"
OUT = DATA / "synthetic_train.jsonl"
IMPERATIVES_OUT = DATA / "imperatives_train.jsonl"

PREMIUM = ("gpt-4-1106-preview", "claude-v2", "claude-v1")
# Mean cost per query (USD) of each model over the three RouterBench files.
COST = {
    "WizardLM/WizardLM-13B-V1.2": 0.00012,
    "claude-instant-v1": 0.00037,
    "claude-v1": 0.0036,
    "claude-v2": 0.0038,
    "gpt-3.5-turbo-1106": 0.00042,
    "gpt-4-1106-preview": 0.005,
    "meta/code-llama-instruct-34b-chat": 0.00031,
    "meta/llama-2-70b-chat": 0.00038,
    "mistralai/mistral-7b-chat": 8.1e-05,
    "mistralai/mixtral-8x7b-chat": 0.00025,
    "zero-one-ai/Yi-34B-Chat": 0.00033,
}

EASY = [
    (
        "Translate '{p}' into {l}.",
        {
            "p": [
                "good evening",
                "thank you very much",
                "see you soon",
                "my name is Anna",
                "where is the bathroom",
                "I am hungry",
                "the weather is nice",
                "how old are you",
                "I like coffee",
                "welcome home",
            ],
            "l": ["Italian", "German", "Portuguese", "French", "Russian"],
        },
    ),
    (
        "How do you say '{p}' in {l}?",
        {
            "p": ["hello", "goodbye", "please", "excuse me", "how much is this", "good luck", "I'm sorry"],
            "l": ["Spanish", "Japanese", "Chinese", "Greek"],
        },
    ),
    (
        "What does '{p}' mean in English?",
        {
            "p": [
                "gracias",
                "danke schön",
                "arrivederci",
                "obrigado",
                "bonne nuit",
                "konnichiwa",
                "buenos días",
                "ciao bella",
            ]
        },
    ),
    (
        "{l} for '{p}'?",
        {"l": ["Spanish", "French", "German"], "p": ["dog", "house", "water", "friend", "book", "car"]},
    ),
    (
        "What is the capital of {c}?",
        {
            "c": [
                "Italy",
                "Spain",
                "Germany",
                "Japan",
                "Kenya",
                "Peru",
                "Norway",
                "Egypt",
                "Vietnam",
                "Chile",
                "Poland",
                "Greece",
                "Australia",
                "India",
                "Mexico",
                "Sweden",
                "Turkey",
                "Ireland",
            ]
        },
    ),
    (
        "Which country is {x} in?",
        {
            "x": [
                "the Eiffel Tower",
                "Machu Picchu",
                "the Colosseum",
                "Mount Fuji",
                "the Taj Mahal",
                "Big Ben",
                "the Acropolis",
            ]
        },
    ),
    (
        "Convert {n} {a} to {b}.",
        {
            "n": ["4", "12", "250", "0.5"],
            "a": ["inches", "pounds", "gallons", "meters", "kilometers", "feet"],
            "b": ["centimeters", "kilograms", "liters", "yards"],
        },
    ),
    (
        "How many {a} is {n} {b}?",
        {
            "a": ["grams", "milliliters", "minutes", "centimeters"],
            "n": ["3", "1.5", "10"],
            "b": ["kilograms", "liters", "hours", "meters"],
        },
    ),
    ("What is {n} degrees Celsius in Fahrenheit?", {"n": ["0", "25", "37", "100", "-10"]}),
    (
        "What is {x} {op} {y}?",
        {
            "x": ["7", "23", "140", "9", "64"],
            "op": ["plus", "minus", "times", "divided by"],
            "y": ["5", "19", "4", "8"],
        },
    ),
    (
        "What is the {op} of {n}?",
        {
            "op": ["square root", "square", "cube", "half", "double"],
            "n": ["16", "49", "100", "9", "144", "36"],
        },
    ),
    (
        "What year did {e}?",
        {
            "e": [
                "the French Revolution start",
                "the Cold War end",
                "humans first land on the Moon",
                "the first World War begin",
                "the Roman Empire fall",
                "the internet become public",
            ]
        },
    ),
    (
        "Put this sentence in the {t} tense: '{s}'",
        {
            "t": ["future", "past", "present"],
            "s": ["I eat breakfast.", "They played football.", "We will travel."],
        },
    ),
    (
        "How many {a} are in {n} {b}?",
        {
            "a": ["megabytes", "centimeters", "seconds", "ounces"],
            "n": ["2", "5", "half a"],
            "b": ["gigabytes", "meters", "minutes", "pounds"],
        },
    ),
    ("{x} + {y} = ?", {"x": ["3", "11", "58", "100"], "y": ["4", "9", "42"]}),
    ("What's {p}% of {n}?", {"p": ["10", "20", "50", "25"], "n": ["40", "200", "60", "1000"]}),
    ("What is {n} {op}?", {"n": ["4", "9", "12", "20", "7", "100"], "op": ["squared", "cubed"]}),
    ("What's the square root of {n}?", {"n": ["16", "81", "144", "49", "400", "10000"]}),
    ("What is {a} times {b}?", {"a": ["6", "12", "25", "9"], "b": ["7", "4", "11"]}),
    (
        "{g}",
        {
            "g": [
                "Hey!",
                "Hello there",
                "Good afternoon",
                "Thanks so much!",
                "Great, thank you.",
                "Morning!",
                "How's it going?",
                "See you later",
                "Appreciate it",
                "Sounds good",
                "yo",
                "Hiya",
                "nice, thanks",
                "Hi, how are you?",
                "Good evening!",
                "Thank you kindly.",
                "Have a great day!",
                "lol",
                "ok",
                "Awesome!",
                "Perfect, thanks!",
                "Hey, hope you're well",
                "Bonsoir",
                "Ciao!",
                "Gracias!",
                "Guten Morgen",
                "Merci !",
                "Привет",
                "你好",
                "thx",
                "Nice one",
                "That's all, bye!",
                "Got it, thanks.",
                "Hello, anyone there?",
                "Good to see you again!",
            ]
        },
    ),
    (
        "Who {v} {w}?",
        {
            "v": ["wrote", "created"],
            "w": [
                "Hamlet",
                "Pride and Prejudice",
                "The Odyssey",
                "Don Quixote",
                "Mickey Mouse",
                "Sherlock Holmes",
                "The Little Prince",
                "War and Peace",
            ],
        },
    ),
    (
        "Who {v}?",
        {
            "v": [
                "discovered penicillin",
                "invented the telephone",
                "was the first person on the Moon",
                "painted The Starry Night",
                "composed the Moonlight Sonata",
                "founded Microsoft",
                "wrote the Odyssey",
            ]
        },
    ),
    (
        "When was {x}?",
        {
            "x": [
                "the Eiffel Tower built",
                "the first iPhone released",
                "the Berlin Wall torn down",
                "the Titanic sunk",
                "the Declaration of Independence signed",
            ]
        },
    ),
    (
        "How many {x}?",
        {
            "x": [
                "planets are in the solar system",
                "players are on a soccer team",
                "strings does a guitar have",
                "weeks are in a year",
                "sides does a hexagon have",
                "colors are in a rainbow",
                "bones are in the human body",
            ]
        },
    ),
    (
        "What is the {q}?",
        {
            "q": [
                "largest ocean",
                "longest river in Africa",
                "smallest country in the world",
                "freezing point of water in Fahrenheit",
                "speed of light",
                "main ingredient of guacamole",
                "national animal of Scotland",
                "hottest planet",
            ]
        },
    ),
    (
        "Give me a synonym for '{w}'.",
        {"w": ["big", "fast", "smart", "angry", "beautiful", "tired", "funny", "small"]},
    ),
    ("What is the opposite of '{w}'?", {"w": ["hot", "early", "ancient", "generous", "full", "loud"]}),
    (
        "What does the word '{w}' mean?",
        {"w": ["ubiquitous", "serendipity", "melancholy", "pragmatic", "resilient", "benevolent"]},
    ),
    (
        "Fix the typo in: '{s}'",
        {
            "s": [
                "I definately agree",
                "See you tommorow",
                "Their going home",
                "Untill next week",
                "Its a beautifull day",
                "I beleive you",
            ]
        },
    ),
    (
        "Correct the grammar: '{s}'",
        {
            "s": [
                "She don't like apples.",
                "We was late yesterday.",
                "He have two brothers.",
                "Me and my friend is going.",
                "They goes to the gym.",
            ]
        },
    ),
    (
        "Make this sound more polite: '{s}'",
        {
            "s": [
                "Give me the report.",
                "Stop calling me.",
                "I need this today.",
                "Move your car.",
                "Answer my email.",
                "Be quiet.",
            ]
        },
    ),
    (
        "Rewrite '{s}' in a more {t} way.",
        {
            "s": [
                "the meeting is cancelled",
                "we can't help you",
                "your order is late",
                "please pay the invoice",
            ],
            "t": ["friendly", "formal", "concise"],
        },
    ),
    (
        "Summarize in one sentence: {s}",
        {
            "s": [
                "The shop will be closed on Monday for cleaning and will open again on Tuesday at 9.",
                "Our team won the match 3-1 after a strong second half and a late goal.",
                "The train was delayed by twenty minutes because of a signal problem near the station.",
            ]
        },
    ),
    (
        "Write a short {k} message for my {r}.",
        {
            "k": ["congratulations", "get well soon", "thank you", "happy new year", "good luck"],
            "r": ["coworker", "aunt", "neighbour", "best friend", "boss"],
        },
    ),
    (
        "Write a {k} about {t}.",
        {
            "k": ["haiku", "two-line poem", "short limerick"],
            "t": ["the sea", "coffee", "winter", "my cat", "Mondays"],
        },
    ),
    (
        "Suggest a name for {x}.",
        {
            "x": [
                "my new kitten",
                "a coffee shop",
                "a fantasy character",
                "my book club",
                "a hiking group",
                "a pet turtle",
            ]
        },
    ),
    (
        "Name three {t}.",
        {
            "t": [
                "colors",
                "vegetables",
                "countries in Africa",
                "farm animals",
                "musical instruments",
                "planets",
                "breakfast foods",
                "sports played with a ball",
            ]
        },
    ),
    (
        "Is {x}?",
        {
            "x": [
                "the Sun a star",
                "a whale a fish",
                "Pluto a planet",
                "a peanut a nut",
                "water wet",
                "Australia a continent",
                "a spider an insect",
            ]
        },
    ),
    ("What time is it in {c} when it's noon in London?", {"c": ["New York", "Tokyo", "Sydney", "Paris"]}),
    ("Alphabetize: {w}", {"w": ["pear, kiwi, grape", "dog, cat, bird, ant", "Paris, Oslo, Rome, Berlin"]}),
    ("Tell me a fun fact about {x}.", {"x": ["octopuses", "the Moon", "honey", "penguins", "Mars"]}),
    (
        "Recommend a {x}.",
        {
            "x": [
                "book for the beach",
                "podcast about history",
                "board game for four players",
                "classic movie",
                "easy houseplant",
            ]
        },
    ),
    (
        "How do I {x}?",
        {
            "x": [
                "make a cup of tea",
                "tie a tie",
                "take a screenshot on Windows",
                "reset my router",
                "cook rice",
                "unfreeze a frozen pipe quickly",
            ]
        },
    ),
    (
        "{intro} {ask}",
        {
            "intro": [
                "Hi there! Hope your week is going well.",
                "Quick question from a beginner, sorry if this is silly.",
                "My kids and I were talking at dinner and got curious about something.",
            ],
            "ask": [
                "What is the biggest planet?",
                "How many days are in February this year?",
                "What language do people speak in Argentina?",
                "Could you translate 'good night' into French for us?",
            ],
        },
    ),
    (
        "Please list these items as bullet points: {x}",
        {
            "x": [
                "flour, sugar, eggs, butter, vanilla",
                "passport, tickets, charger, sunscreen",
                "call mum, buy milk, pay rent, book dentist",
            ]
        },
    ),
    (
        "Turn these notes into bullet points: {n}",
        {
            "n": [
                "at 9 we reviewed the budget, Sara sends numbers by Friday, next call on the 14th at 3 pm",
                "bought 2 tickets for the 8 pm show, dinner at 6, meet at the station at 5:30",
                "the gym opens at 6, closes at 22, classes on Monday and Thursday, 30 euros a month",
            ]
        },
    ),
    (
        "Convert these {a} values to {b}: {v}",
        {
            "a": ["Celsius", "kilometer", "kilogram"],
            "b": ["Fahrenheit", "mile", "pound"],
            "v": ["5, 15, 25", "1, 2, 3, 4", "12, 50, 100"],
        },
    ),
    (
        # Several numbers, one trivial operation each: not a word problem (make_wordproblems.py).
        "{intro} please convert these {a} values to {b} and list them: {v}.",
        {
            "intro": ["For my travel notes,", "I'm filling in a spreadsheet, so", "For a school poster,"],
            "a": ["kilometre", "litre", "Fahrenheit"],
            "b": ["mile", "gallon", "Celsius"],
            "v": ["3, 8, 21 and 42", "10, 25, 60 and 75"],
        },
    ),
    (
        "Fix the spelling mistakes: '{s}'",
        {
            "s": [
                "I recomend the resturant on the corner.",
                "We need to acommodate more guests tommorow.",
                "The goverment anounced new holliday dates.",
                "Please seperate the recieved letters.",
            ]
        },
    ),
    ("Reformat {d} as YYYY-MM-DD.", {"d": ["March 5, 2024", "5/11/2023", "the 2nd of January 2025"]}),
    (
        "Make a short to-do list from this: {t}",
        {
            "t": [
                "I have to call the plumber, pick up the kids at 4 and buy bread and 6 eggs",
                "tomorrow: email Anna, pay the 45 dollar phone bill, water the plants",
            ]
        },
    ),
    (
        "Can you make this email a bit friendlier? '{x}'",
        {
            "x": [
                "Hello, the report is attached. Regards, Tom.",
                "Hi, I can't come tomorrow. Bye.",
                "Dear team, the office is closed Friday.",
            ]
        },
    ),
]

HARD = [
    (
        "Prove that {s}.",
        {
            "s": [
                "the sum of the angles of a triangle is 180 degrees in Euclidean geometry",
                "there are infinitely many primes of the form 4k+3",
                "log2(3) is irrational",
                "every bounded monotone sequence converges",
                "a graph is bipartite iff it has no odd cycles",
                "the determinant of a product is the product of the determinants",
                "n^3 - n is divisible by 6 for every integer n",
                "the rationals are countable",
                "there is no surjection from a set onto its power set",
                "every compact metric space is complete",
                "a polynomial of degree n has at most n roots",
                "the intersection of two subgroups is a subgroup",
                "the number of subsets of an n-element set is 2^n",
                "the AM-GM inequality holds for n positive reals",
                "every planar graph is 5-colourable",
                "the real numbers between 0 and 1 cannot be listed",
            ]
        },
    ),
    (
        "Show that {s}.",
        {
            "s": [
                "the series sum 1/n^2 converges",
                "the composition of two injective functions is injective",
                "a group of order p^2 is abelian",
                "the matrix exponential of a skew-symmetric matrix is orthogonal",
                "gcd(a, b) * lcm(a, b) = a * b",
            ]
        },
    ),
    (
        "Implement {a} in {l}, with unit tests and a complexity analysis.",
        {
            "a": [
                "a min-heap priority queue",
                "Kruskal's minimum spanning tree algorithm",
                "a consistent hashing ring",
                "the KMP string matching algorithm",
                "a skip list",
                "topological sort with cycle detection",
                "an interval tree",
                "a union-find with path compression",
                "Bellman-Ford with negative cycle detection",
            ],
            "l": ["Python", "Java", "Rust", "C++"],
        },
    ),
    (
        "Write a {l} function that {d}.",
        {
            "l": ["Python", "JavaScript", "Go"],
            "d": [
                "parses a CSV file with quoted fields and escaped quotes",
                "computes the edit distance between two strings with memoisation",
                "merges overlapping intervals and explains the invariant",
                "validates a sudoku board and solves it with backtracking",
                "finds all strongly connected components of a directed graph",
                "implements a rate limiter with the token bucket algorithm",
            ],
        },
    ),
    (
        "Design a {s} that {r}. Cover data model, APIs, scaling and failure modes.",
        {
            "s": [
                "video streaming platform",
                "distributed cache",
                "ride-hailing dispatch service",
                "search engine for e-commerce",
                "notification service",
                "leaderboard service",
                "file sync service like Dropbox",
                "ticket booking system",
            ],
            "r": [
                "serves 100 million daily users",
                "must stay available during a regional outage",
                "needs p99 latency under 100 ms",
            ],
        },
    ),
    (
        "How would you architect {x}? Discuss consistency, partitioning and trade-offs.",
        {
            "x": [
                "a globally replicated user-profile store",
                "an event-sourced order system",
                "a multi-tenant SaaS database layer",
                "a real-time bidding platform",
                "a distributed lock service",
            ]
        },
    ),
    (
        "Solve {e} and explain each step.",
        {
            "e": [
                "x^3 - 6x^2 + 11x - 6 = 0",
                "the integral of ln(x)/x^2 from 1 to infinity",
                "dy/dx = y(1 - y) with y(0) = 0.1",
                "the system x + y + z = 6, 2x - y + z = 3, x + 2y - z = 2",
                "the recurrence a_n = 3a_{n-1} - 2a_{n-2} with a_0 = 0, a_1 = 1",
                "for the maximum area of a rectangle inscribed in a circle of radius r",
                "sin(2x) = cos(x) on [0, 2pi]",
                "the inequality |2x - 3| < x + 1",
            ]
        },
    ),
    (
        "Compute {e}, showing the derivation.",
        {
            "e": [
                "the Fourier series of f(x) = x on [-pi, pi]",
                "the volume of the solid formed by rotating y = sqrt(x) around the x-axis from 0 to 4",
                "the inverse of the matrix [[1, 2, 3], [0, 1, 4], [5, 6, 0]]",
                "the sum of the infinite series n / 2^n",
                "the number of spanning trees of the complete graph K5",
            ]
        },
    ),
    (
        "Explain in depth how {t} works, including its trade-offs and failure cases.",
        {
            "t": [
                "Paxos",
                "two-phase commit",
                "the TCP congestion control algorithm",
                "a B+ tree index in a database",
                "the Linux CFS scheduler",
                "transformer self-attention",
                "copy-on-write snapshots in ZFS",
                "MVCC in PostgreSQL",
                "a log-structured merge tree",
                "Kubernetes scheduling and preemption",
                "vector clocks",
            ]
        },
    ),
    (
        "What is the probability that {p}? Derive it carefully.",
        {
            "p": [
                "a random permutation of 10 elements has no fixed point",
                "two random chords of a circle intersect",
                "a random walk on the integers returns to the origin",
                "the sum of three dice is at least 15",
                "a random 5-card poker hand is a full house",
                "three random points on a circle form an acute triangle",
            ]
        },
    ),
    (
        "Write a {l} program that {d}.",
        {
            "l": ["C", "Go", "Python"],
            "d": [
                "implements a concurrent web server with a thread pool and graceful shutdown",
                "parses and evaluates arithmetic expressions with variables and functions",
                "detects deadlocks in a resource allocation graph",
                "compresses files with Huffman coding and decompresses them",
                "implements a simple garbage-collected heap with mark and sweep",
            ],
        },
    ),
    (
        "Debug this code and explain the root cause: {c}",
        {
            "c": [
                "def add(item, items=[]): items.append(item); return items",
                "for i in range(len(xs)): if xs[i] < 0: xs.remove(xs[i])",
                "async def f(): results = [await g(x) for x in xs]  # slow, why?",
                "int *p = malloc(10); p[10] = 1; free(p); free(p);",
                "SELECT name FROM users WHERE id NOT IN (SELECT user_id FROM bans)  -- returns nothing",
                "const x = arr.sort(); // my original array changed and numbers sort wrongly",
            ]
        },
    ),
    (
        "Analyse {q}, weighing the strongest arguments on each side.",
        {
            "q": [
                "whether microservices or a modular monolith suits a 10-person startup",
                "the consequences of quantitative easing on asset prices and inequality",
                "whether P vs NP is likely to be resolved by current techniques",
                "the ethical implications of autonomous weapons",
                "the case for and against carbon taxes versus cap-and-trade",
            ]
        },
    ),
    (
        "Find a closed form for {s} and prove it by induction.",
        {
            "s": [
                "1^3 + 2^3 + ... + n^3",
                "the sum of k * 2^k for k = 1..n",
                "the number of binary strings of length n with no two consecutive ones",
                "the sum of the first n Fibonacci numbers",
            ]
        },
    ),
    (
        "{p} Explain your reasoning step by step.",
        {
            "p": [
                "A clock shows 3:15. What is the angle between the hands?",
                "If 5 machines make 5 widgets in 5 minutes, how long do 100 machines take to make "
                "100 widgets?",
                "You have 12 coins, one counterfeit of unknown weight, and a balance. "
                "Find it in three weighings.",
                "Two trains 300 km apart approach each other at 70 and 80 km/h; a bird flies "
                "between them at 120 km/h. How far does it fly?",
                "A farmer must cross a river with a wolf, a goat and a cabbage in a boat that "
                "holds one item. How?",
            ]
        },
    ),
    (
        "Explain {c}.",
        {
            "c": [
                "the proof of Gödel's incompleteness theorem",
                "the Curry-Howard correspondence",
                "how the Fast Fourier Transform runs in n log n",
                "the spectral theorem for self-adjoint operators",
                "why RSA decryption is correct",
                "the Banach-Tarski paradox",
                "amortised analysis of dynamic arrays",
                "the proof of the central limit theorem",
                "why Kolmogorov complexity is uncomputable",
                "how Shor's algorithm factors integers",
                "monads in Haskell and the monad laws",
                "NP-completeness reductions from 3-SAT",
                "the Lovász local lemma",
                "homology groups",
                "the Hahn-Banach theorem",
            ]
        },
    ),
    (
        "Prove {t}.",
        {
            "t": [
                "Wilson's theorem",
                "Lagrange's theorem for finite groups",
                "the Chinese remainder theorem",
                "Bezout's identity",
                "the fundamental theorem of arithmetic",
                "the mean value theorem",
                "Hall's marriage theorem",
                "König's lemma",
                "the binomial theorem",
                "Cantor's theorem",
                "the four squares theorem",
                "Sylow's first theorem",
                "the AM-GM inequality",
                "Euler's formula for planar graphs",
                "the intermediate value theorem",
                "Bertrand's postulate",
                "the Schröder-Bernstein theorem",
                "Ramsey's theorem for two colours",
            ]
        },
    ),
    (
        "Implement {x}.",
        {
            "x": [
                "an AVL tree with deletion",
                "a regex engine supporting * and |",
                "Raft leader election",
                "a persistent vector",
                "a lock-free stack",
                "a Bloom filter",
                "a DPLL SAT solver",
                "an LR(1) parser generator",
                "a B+ tree",
                "a mark-compact garbage collector",
            ]
        },
    ),
    # Short imperatives for a whole system or a named result: their length and form alone look like
    # a trivial request, so the trivial gate needs them as negatives and the hard-kind gate as
    # positives ("Write a memory allocator." had P(trivial) 1.0).
    (
        "Write {x}.",
        {
            "x": [
                "a JSON parser in C",
                "an HTTP/2 server from scratch",
                "a SQL query planner",
                "a process scheduler for a toy kernel",
                "a distributed file system client",
                "a tracing JIT for a stack machine",
                "a type checker for the simply typed lambda calculus",
                "a concurrent hash map in Java",
                "a TCP congestion control algorithm",
                "a chess engine with alpha-beta pruning",
                "a log-structured merge tree storage engine",
                "a Forth interpreter in assembly",
            ]
        },
    ),
    (
        "Design {s}.",
        {
            "s": [
                "a distributed message queue",
                "a global leaderboard for a mobile game",
                "a collaborative document editor",
                "a notification service for a billion devices",
                "a strongly consistent key-value store",
                "a metrics ingestion pipeline",
                "an online auction backend",
                "a real-time fraud detection pipeline",
                "a content delivery network",
                "a web crawler for a billion pages",
                "a multi-datacenter database failover scheme",
                "a stock exchange matching engine",
            ]
        },
    ),
    ("Is {n} prime? Prove it.", {"n": ["2^31 - 1", "1000003", "4294967297", "2^67 - 1"]}),
    (
        "Why is {x}?",
        {
            "x": [
                "comparison sorting Omega(n log n)",
                "the halting problem undecidable",
                "heapsort not stable",
                "the greedy algorithm optimal for interval scheduling",
                "3-SAT NP-complete but 2-SAT in P",
            ]
        },
    ),
    (
        "Derive {x}.",
        {
            "x": [
                "the formula for the variance of a binomial distribution",
                "the normal equations of least squares regression",
                "the Euler-Lagrange equation from the principle of least action",
                "the quadratic formula by completing the square",
                "the time complexity of building a binary heap bottom-up",
            ]
        },
    ),
]


# "Write <a whole system>." and nothing more: as short and plain as a trivial request, so one word's
# vector decided its gates ("Write a garbage collector.": P(trivial) 1.0, to gpt-4.1-nano). A file of
# its own, for the gates only (no weight in the difficulty model: in ``HARD`` the same rows cost
# MBPP's within-task order, whose requests also start "Write a ..."). None of these systems is a
# development or check request's.
IMPERATIVE_SYSTEMS = [
    "a B-tree index",
    "a bytecode virtual machine",
    "a toy operating system kernel",
    "a journaling file system",
    "a database storage engine",
    "a distributed lock service",
    "a layer-7 load balancer",
    "a message broker",
    "a container runtime",
    "a TCP/IP stack",
    "a text editor with undo and redo",
    "a spreadsheet engine with formulas",
    "a ray tracer",
    "a rigid-body physics engine",
    "a neural network library from scratch",
    "a Scheme interpreter",
    "a static type checker",
    "a linker for ELF files",
    "an x86 assembler",
    "a source-level debugger",
    "a sampling profiler",
    "a version control system",
    "a package manager with dependency resolution",
    "a build system with incremental rebuilds",
    "a cost-based query optimizer",
    "a transaction manager with MVCC",
    "a write-ahead log with crash recovery",
    "a DNS resolver",
    "a TLS 1.3 handshake",
    "a work-stealing thread pool",
    "an async event loop",
    "a coroutine library",
    "a cryptographic hash function",
    "an image compression codec",
    "a video streaming server",
    "a recommendation engine",
    "a full-text search index",
    "a theorem prover",
    "a symbolic differentiation engine",
    "an arbitrary-precision integer library",
    "a graph database",
    "a time-series database",
    "a lock-free ring buffer",
    "a peer-to-peer file sharing protocol",
    "a Paxos implementation",
    "a distributed tracing system",
    "a software renderer for 3D meshes",
    "a regex-to-DFA converter",
    "a sandbox for untrusted code",
    "a deadlock detector",
]
IMPERATIVES = [("Write {x}.", {"x": IMPERATIVE_SYSTEMS})]
# ... and the same forms for everyday things, easy: without them the gates learn the form instead of
# the object, and "Write a packing list." or "Design a weekly meal plan." go to gpt-4.1. None of these
# objects is a development or check request's.
IMPERATIVES_EASY = [
    (
        "Write {x}.",
        {
            "x": [
                "a short poem about the sea",
                "a rhyming couplet about autumn",
                "a pun about bread",
                "a short congratulations message",
                "a note to my neighbour about a parcel",
                "a friendly hello email",
                "a short invitation to a barbecue",
                "a sign for a lost umbrella",
                "a note excusing my son from school today",
                "a short review of a pizza place",
                "a short message to cancel a dentist appointment",
                "a fun fact about penguins",
                "a short holiday greeting",
                "a name for a goldfish",
                "a list of five fruits",
                "a cheerful good-morning text",
                "a short ad for a garage sale",
                "a note for the milkman",
                "a fortune cookie message",
                "a short speech to open a book club",
                "a happy anniversary message",
                "a postcard from Paris",
                "a short text asking a friend to lunch",
                "a kind comment on a friend's photo",
                "a one-line description of a cosy cafe",
                "a cute nickname for my puppy",
            ]
        },
    ),
    (
        "Design {x}.",
        {
            "x": [
                "a birthday party invitation",
                "a poster for a bake sale",
                "a name tag for a conference",
                "a cover for my recipe notebook",
                "a simple flyer for a yard sale",
                "a reading corner for my kids",
                "a colour scheme for a bedroom",
                "a treasure hunt for a child's party",
                "a quiz about fruits for kids",
                "a simple weekly chore schedule",
            ]
        },
    ),
    (
        "Build {x}.",
        {
            "x": [
                "a reading list for the summer",
                "a checklist for moving house",
                "a simple budget for a weekend trip",
                "a list of icebreaker questions",
                "a study timetable for next week",
                "a list of gift ideas for my mum",
                "a simple daily schedule",
                "a list of indoor games for a rainy day",
                "a shopping list for a taco night",
                "a beach day checklist",
            ]
        },
    ),
    (
        "Make {x}.",
        {
            "x": [
                "a list of fun weekend activities",
                "a short poem for my grandma",
                "a simple sign for my door",
                "a list of pet names for a hamster",
                "a cheerful banner message",
                "a list of easy dinner ideas",
                "a rhyme about brushing teeth",
                "a short note for the babysitter",
                "a simple quiz about colours",
            ]
        },
    ),
    (
        "Plan {x}.",
        {
            "x": [
                "a picnic in the park",
                "a movie night with friends",
                "a lazy Sunday",
                "a family game night",
                "a trip to the zoo",
            ]
        },
    ),
]


def expand(templates: list[tuple[str, dict[str, list[str]]]]) -> list[str]:
    out = []
    for template, fillers in templates:
        keys = list(fillers)
        for values in itertools.product(*(fillers[k] for k in keys)):
            out.append(template.format(**dict(zip(keys, values, strict=True))))
    return out


def _row(prefix: str, source: str, label: str, i: int, text: str) -> dict[str, object]:
    return {
        "id": f"{prefix}.{label}.{i}",
        "source": source,
        "label": label,
        "question": text,
        "scores": {m: 1.0 if label == "easy" or m in PREMIUM else 0.0 for m in COST},
        "cost": COST,
    }


def _write(path: Path, source: str, easy: list[str], hard: list[str]) -> None:
    rows = [
        _row(source, source, label, i, text)
        for label, texts in (("easy", easy), ("hard", hard))
        for i, text in enumerate(texts)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {path}: {len(easy)} easy, {len(hard)} hard")


def main() -> int:
    _write(OUT, "synthetic", expand(EASY), expand(HARD))
    _write(IMPERATIVES_OUT, "imperatives", expand(IMPERATIVES_EASY), expand(IMPERATIVES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
