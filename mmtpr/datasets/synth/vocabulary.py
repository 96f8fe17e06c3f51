"""Word tables of the synthetic captions.

Pure data: the surface forms (synonyms) with which
:mod:`mmtpr.datasets.synth.captions` names every attribute value.
"""

# Vocabulary of the captions. Each entry lists interchangeable surface forms
# so that the text encoder must learn synonyms, as with real annotations.
_NOUNS = {
    'man': ('man', 'guy', 'gentleman', 'young man'),
    'woman': ('woman', 'lady', 'girl', 'young woman'),
}
_PRONOUNS = {'man': ('he', 'his'), 'woman': ('she', 'her')}
_UPPER_WORDS = {
    't-shirt': ('t-shirt', 'tee', 'short-sleeved t-shirt'),
    'shirt': ('shirt', 'long-sleeved shirt', 'button-up shirt',
              'collared shirt'),
    'jacket': ('jacket', 'zip-up jacket', 'short jacket'),
    'coat': ('coat', 'long coat', 'overcoat'),
    'sweater': ('sweater', 'jumper', 'knitted sweater', 'pullover'),
    'hoodie': ('hoodie', 'hooded sweatshirt', 'hooded top'),
}
# (word, is_plural): plural garments take "a pair of" or no article.
_LOWER_WORDS = {
    'trousers': (('trousers', True), ('pants', True), ('long pants', True),
                 ('slacks', True)),
    'jeans': (('jeans', True), ('denim jeans', True)),
    'shorts': (('shorts', True), ('knee-length shorts', True)),
    'skirt': (('skirt', False), ('knee-length skirt', False),
              ('flared skirt', False)),
}
_SHOE_WORDS = ('shoes', 'sneakers')
_BAG_IS = {
    'backpack': ('carrying {ac} backpack',
                 'wearing {ac} backpack on {poss} back'),
    'handbag': ('carrying {ac} handbag',
                'holding {ac} handbag in {poss} hand',
                'holding {ac} purse'),
    'shoulder bag': ('carrying {ac} shoulder bag',
                     'carrying {ac} bag over {poss} shoulder',
                     'wearing {ac} bag across {poss} body'),
}
_BAG_NP = {
    'backpack': ('{ac} backpack', '{ac} rucksack'),
    'handbag': ('{ac} handbag', '{ac} purse'),
    'shoulder bag': ('{ac} shoulder bag', '{ac} messenger bag',
                     '{ac} crossbody bag'),
}
_HAT_NP = {
    'cap': ('{ac} cap', '{ac} baseball cap'),
    'hat': ('{ac} hat', '{ac} wide-brimmed hat'),
}
_POSE_WORDS = {
    'front': ('Facing the camera', 'Seen from the front',
              'In a front view'),
    'back': ('Seen from behind', 'Seen from the back', 'In a back view'),
}
