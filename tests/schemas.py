"""JSON schemas the structured-output tests ask the embedded model to fill (kept small: short
strings and bounded numbers, so a 135M model at temperature 0.7 ends well within max_tokens)."""

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "likes_cats": {"type": "boolean"},
    },
    "required": ["name", "age", "likes_cats"],
    "additionalProperties": False,
}
CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "country": {"type": "string", "maxLength": 30},
        "population_millions": {"type": "number", "minimum": 0, "maximum": 50},
    },
    "required": ["city", "country"],
}
WEATHER = {
    "type": "object",
    "properties": {
        "sky": {"enum": ["sunny", "cloudy", "rainy", "snowy"]},
        "temperature_c": {"type": "integer", "minimum": -40, "maximum": 50},
    },
    "required": ["sky", "temperature_c"],
}
COLOURS = {"type": "array", "items": {"enum": ["red", "green", "blue", "yellow"]}, "minItems": 1, "maxItems": 4}
# An answer of "<Name> is|was <n> years old."
AGE_REGEX = r"[A-Z][a-z]{2,12} (is|was) [0-9]{1,3} years old\."
YES_NO_GRAMMAR = 'root ::= "The answer is " ("yes" | "no") "."'
