"""The words the synthetic generator writes with: a dozen hobby topics, each with the nouns,
adjectives, activities and tags its titles, descriptions and reviews are made of."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str  # the item category
    subject: str  # how a reader would name the hobby in a sentence
    nouns: tuple[str, ...]  # title-cased noun phrases
    adjectives: tuple[str, ...]
    activities: tuple[str, ...]  # gerund phrases
    tags: tuple[str, ...]


TOPICS: tuple[Topic, ...] = (
    Topic("astronomy", "stargazing and astronomy",
          ("Telescopes", "Nebulae", "Star Charts", "Meteor Showers", "Planetary Orbits",
           "Dark Skies", "Lunar Craters", "Galaxies"),
          ("starlit", "celestial", "cosmic", "nocturnal", "luminous"),
          ("observing the night sky", "tracking planets across the seasons",
           "aligning a telescope mount", "photographing the moon", "finding deep-sky objects"),
          ("astronomy", "telescope", "stars", "planets", "night-sky", "space")),
    Topic("baking", "home baking",
          ("Sourdough Starters", "Croissants", "Rye Loaves", "Layer Cakes", "Pie Crusts",
           "Bread Ovens", "Pastry Doughs", "Cinnamon Rolls"),
          ("crusty", "golden", "flaky", "buttery", "rustic"),
          ("proofing dough overnight", "feeding a sourdough starter", "laminating butter",
           "scoring loaves", "baking bread at home"),
          ("baking", "bread", "pastry", "sourdough", "oven", "flour")),
    Topic("gardening", "gardening",
          ("Vegetable Beds", "Compost Heaps", "Heirloom Tomatoes", "Perennial Borders",
           "Seed Trays", "Herb Gardens", "Fruit Trees", "Raised Beds"),
          ("leafy", "blooming", "earthy", "seasonal", "green"),
          ("planting seedlings", "pruning roses", "building healthy soil",
           "saving seeds", "watering a vegetable garden"),
          ("gardening", "plants", "soil", "compost", "seeds", "flowers")),
    Topic("jazz", "jazz music",
          ("Saxophone Solos", "Bebop Standards", "Swing Bands", "Blue Notes",
           "Piano Trios", "Jam Sessions", "Walking Basslines", "Big Band Records"),
          ("smoky", "swinging", "soulful", "improvised", "syncopated"),
          ("improvising over chord changes", "listening to classic jazz records",
           "learning bebop phrasing", "playing in a jazz trio", "transcribing saxophone solos"),
          ("jazz", "saxophone", "swing", "bebop", "improvisation", "music")),
    Topic("hiking", "hiking and trail walking",
          ("Mountain Trails", "Backpacking Routes", "Alpine Passes", "Trail Maps",
           "Hiking Boots", "Summit Climbs", "Forest Paths", "Day Hikes"),
          ("rugged", "scenic", "alpine", "windswept", "wild"),
          ("planning a multi-day hike", "reading topographic maps", "packing a light backpack",
           "climbing to a summit", "walking long-distance trails"),
          ("hiking", "trails", "mountains", "backpacking", "outdoors", "walking")),
    Topic("chess", "chess",
          ("Chess Openings", "Endgame Studies", "Pawn Structures", "Grandmaster Games",
           "Tactical Puzzles", "Queen Sacrifices", "Rook Endings", "Blitz Tournaments"),
          ("strategic", "tactical", "positional", "sharp", "classical"),
          ("studying chess openings", "calculating tactical combinations",
           "converting a winning endgame", "analysing grandmaster games", "playing blitz chess"),
          ("chess", "openings", "endgames", "tactics", "strategy", "board-games")),
    Topic("photography", "photography",
          ("Portrait Lighting", "Camera Lenses", "Street Photography", "Film Cameras",
           "Landscape Shots", "Darkroom Prints", "Shutter Speeds", "Aperture Settings"),
          ("candid", "sharp", "moody", "well-composed", "cinematic"),
          ("composing a photograph", "shooting in manual mode", "editing raw images",
           "developing film in a darkroom", "working with natural light"),
          ("photography", "camera", "lenses", "portraits", "lighting", "editing")),
    Topic("woodworking", "woodworking",
          ("Dovetail Joints", "Hand Planes", "Oak Furniture", "Workbenches", "Wood Finishes",
           "Chisels", "Cabinet Making", "Lathe Turning"),
          ("handcrafted", "sturdy", "hand-cut", "sanded", "traditional"),
          ("cutting dovetail joints", "sharpening chisels", "building a workbench",
           "finishing hardwood furniture", "turning bowls on a lathe"),
          ("woodworking", "carpentry", "furniture", "joinery", "tools", "timber")),
    Topic("marine biology", "marine biology and ocean life",
          ("Coral Reefs", "Deep Sea Creatures", "Tide Pools", "Whale Migrations",
           "Kelp Forests", "Sea Turtles", "Plankton Blooms", "Octopus Behaviour"),
          ("oceanic", "aquatic", "tidal", "coastal", "deep-water"),
          ("diving on coral reefs", "studying ocean ecosystems", "tracking whale migrations",
           "exploring tide pools", "observing marine animals"),
          ("marine-biology", "ocean", "reefs", "whales", "sea-life", "diving")),
    Topic("cycling", "cycling",
          ("Road Bikes", "Mountain Bike Trails", "Bike Maintenance", "Gravel Rides",
           "Cycling Tours", "Derailleur Gears", "Time Trials", "Bicycle Commuting"),
          ("fast", "lightweight", "aerodynamic", "long-distance", "muddy"),
          ("training for a century ride", "tuning bicycle gears", "riding gravel roads",
           "fixing a flat tyre", "commuting by bike"),
          ("cycling", "bikes", "road-cycling", "mountain-biking", "training", "touring")),
    Topic("poetry", "poetry",
          ("Sonnets", "Free Verse", "Haiku", "Lyric Poems", "Poetry Readings", "Ballads",
           "Metaphors", "Verse Collections"),
          ("lyrical", "rhyming", "melancholy", "evocative", "rhythmic"),
          ("writing sonnets", "reading poems aloud", "studying meter and rhyme",
           "drafting free verse", "interpreting classic poets"),
          ("poetry", "poems", "verse", "writing", "literature", "sonnets")),
    Topic("robotics", "robotics and electronics",
          ("Servo Motors", "Robot Arms", "Microcontrollers", "Line-Following Robots",
           "Sensor Arrays", "Autonomous Drones", "Circuit Boards", "Robot Kits"),
          ("programmable", "autonomous", "mechanical", "sensor-driven", "electronic"),
          ("programming a microcontroller", "wiring sensors and motors",
           "building an autonomous robot", "soldering circuit boards", "tuning a PID controller"),
          ("robotics", "electronics", "arduino", "sensors", "motors", "programming")),
)

TITLE_ADJECTIVES: tuple[str, ...] = (
    "Patient", "Complete", "Practical", "Curious", "Modern", "Essential", "Weekend",
    "Illustrated", "Pocket", "Quiet", "Bold", "Little",
)
TITLE_TEMPLATES: tuple[str, ...] = (
    "The {tadj} Guide to {noun}",
    "{noun}: A {tadj} Introduction",
    "{tadj} {noun} for Beginners",
    "Notes on {adj_t} {noun}",
    "A Field Guide to {noun}",
    "The Art of {noun}",
    "{noun} and {noun2}",
    "Mastering {noun}",
)
OPENING_TEMPLATES: tuple[str, ...] = (
    "{a_adj} introduction to {noun} for anyone who loves {subject}.",
    "This book is about {subject}, with a focus on {noun}.",
    "An accessible guide to {subject} that starts with {noun}.",
)
BODY_TEMPLATES: tuple[str, ...] = (
    "It covers {activity} and {activity2}, step by step.",
    "Readers learn how {noun} and {noun2} fit together.",
    "Includes practical advice on {activity}.",
    "The chapters on {noun2} are especially {adj}.",
    "Ideal for fans of {subject} who want to get better at {activity}.",
    "Full of {adj} examples drawn from {subject}.",
)
POSITIVE_REVIEWS: tuple[str, ...] = (
    "Loved it, {a_adj} take on {noun}.",
    "Great read for anyone into {subject}.",
    "Finally understood {activity}. Highly recommended.",
    "Clear, {adj} and useful for {activity}.",
)
NEGATIVE_REVIEWS: tuple[str, ...] = (
    "Not for me, I expected more about {noun}.",
    "Too basic if you already know {subject}.",
    "Skipped most of it; the part on {activity} felt thin.",
    "Disappointing coverage of {noun}.",
)
