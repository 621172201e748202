"""Vocabulary of the synthetic ads: plain English that espeak-ng says clearly, numbers spelled out."""

ADJECTIVES = ["Aurora", "Summit", "Velvet", "Nimbus", "Harbor", "Cobalt", "Maple", "Lumen", "Echo", "Pioneer",
              "Willow", "Atlas", "Coral", "Falcon", "Juniper", "Meadow"]
NOUNS = ["blender", "backpack", "headphones", "kettle", "lamp", "sneakers", "water bottle", "toothbrush",
         "desk chair", "camera", "jacket", "speaker", "vacuum", "watch", "pillow", "coffee maker"]
INDUSTRIES = ["home", "electronics", "fashion", "beauty", "sports", "food"]
SELLING_POINTS = [
    "charges in ten minutes", "fits in your pocket", "cleans itself after every use",
    "runs quietly all night", "keeps drinks cold for a full day", "weighs less than a pound",
    "comes in six bright colors", "works with your phone", "lasts for three years",
    "folds flat for travel", "is made from recycled plastic", "saves energy every day",
    "heats up in one minute", "blocks out city noise", "stays dry in the rain", "is easy to clean",
]
OPENERS = ["Meet the new {name}.", "This is the {name}.", "Say hello to the {name}.",
           "Introducing the {name}."]
CALLS_TO_ACTION = ["Order yours today.", "Get the {name} now and save twenty percent.",
                   "Buy one today and get free shipping.", "Try it for thirty days at no risk."]
VOICES = ["en-us", "en-us+m3", "en-gb", "en-us+f3"]
# --voices wide: every English espeak-ng language (not the mbrola ones, which need a separate synthesiser)
# with any of its human-sounding variants
WIDE_LANGUAGES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-029"]
WIDE_VARIANTS = [f"m{i}" for i in range(1, 9)] + [f"f{i}" for i in range(1, 6)]
