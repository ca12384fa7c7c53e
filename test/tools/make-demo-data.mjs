// Writes the built-in demo's data, resources/demo/data.jsonl (training) and held-out.jsonl: the Northwind Cycles
// support bot.
//
// A support bot's data as shops really keep it: intents, each with one answer and the many ways customers ask for it.
// Each family below is one answer and 7 phrasings. The rows are interleaved, family after family, so that every tenth
// row (held out, in held-out.jsonl) is a phrasing of a family whose other 6 phrasings are trained on: the
// held-out prompts test what a fine-tune can give a 1M-parameter base, the shop's answer to a question asked in new
// words. Answers that appear in no training row could only be guessed, and a model this small guesses in garbled
// words (an earlier demo's held-out answers read "Northwind Cyclesren and closed").
// Usage: node test/tools/make-demo-data.mjs
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/** [answer, phrasings]: the first phrasings of families 9 and 19 and the second of family 2 are the shown prompts. */
const FAMILIES = [
  [
    'Hi! Welcome to Northwind Cycles. What can I help you with today?',
    ['Hi!', 'Hello there!', 'Hello!', 'Hi there!', 'Hello, anyone there?', 'Hi, hello!', 'Hello again!'],
  ],
  [
    "You can track your order from the Orders page in your account. Once it ships, we'll email you the tracking link.",
    [
      'Where is my order?',
      'How do I track my order?',
      'Can I track my order?',
      'Where is my order right now?',
      'How can I track my order online?',
      'Where is my order? It is late.',
      'Can you track my order?',
    ],
  ],
  [
    'Our store is open from 9 am to 6 pm, Monday to Saturday. We are closed on Sundays.',
    [
      'What are your opening hours?',
      'When are you open?',
      'What are your hours?',
      'Are you open on Sunday?',
      'What time are you open?',
      'Are you open today?',
      'What are your store hours?',
    ],
  ],
  [
    "You can return any item within 30 days for a full refund. Start the return from the Orders page and we'll email you a free label.",
    [
      'How do I return something?',
      'What is your return policy?',
      'Can I return my bike?',
      'How long do I have to return an item?',
      'I want to return my helmet.',
      'Can I return this?',
      'How do returns work?',
    ],
  ],
  [
    'Most orders arrive within three to five business days. Bikes can take up to seven days because they ship in a large box.',
    [
      'How long does delivery take?',
      'How fast is delivery?',
      'When will my delivery arrive?',
      'How many days does delivery take?',
      'How long is delivery?',
      'How long does delivery take for a bike?',
      'What are your delivery times?',
    ],
  ],
  [
    'Shipping is free on orders over 50 dollars. Smaller orders pay a flat 5 dollars.',
    [
      'How much is shipping?',
      'Is shipping free?',
      'What does shipping cost?',
      'Do you charge for shipping?',
      'How much does shipping cost?',
      'Are there shipping fees?',
      'Is shipping free for a bike?',
    ],
  ],
  [
    "We ship to most countries in Europe, North America and parts of Asia. At checkout you'll see the cost for your country.",
    [
      'Do you ship to Canada?',
      'Do you ship abroad?',
      'Do you ship to Europe?',
      'Do you ship internationally?',
      'Which countries do you ship to?',
      'Do you ship to other countries?',
      'Do you ship to Japan?',
    ],
  ],
  [
    'Our store is at 12 Harbour Street, next to the train station. You can try any bike there before you buy it.',
    [
      'Where is your store?',
      'What is the address of your store?',
      'How do I find your store?',
      'Where is the store?',
      'Do you have a store I can visit?',
      'Where is your store located?',
      'Is there a store near me?',
    ],
  ],
  [
    'Yes. Our workshop repairs and services all kinds of bikes. You can book a time on our Repairs page.',
    [
      'Do you repair bikes?',
      'Can you repair my bike?',
      'Can I book a repair?',
      'My bike needs a repair.',
      'Do you do repairs?',
      'How do I get my bike repaired?',
      'Who can repair my bike?',
    ],
  ],
  [
    'You can cancel any order that has not shipped yet from the Orders page. If it has shipped, you can return it when it arrives.',
    [
      'Can I cancel my order?',
      'How do I cancel an order?',
      'I want to cancel my order.',
      'Please cancel my order.',
      'Is it too late to cancel?',
      'Can I still cancel my bike order?',
      'How can I cancel?',
    ],
  ],
  [
    'You can call us from 9 am to 5 pm on weekdays. The number is on our Contact page.',
    [
      'How can I contact you by phone?',
      'What is your phone number?',
      'Can I call you?',
      'Can I call you by phone?',
      'Is there a phone number I can call?',
      'What number can I call?',
      'I want to call you.',
    ],
  ],
  [
    'We accept all major cards, PayPal and gift cards. Orders over 300 dollars can be paid in three parts.',
    [
      'What payment methods do you accept?',
      'Can I pay with PayPal?',
      'Can I pay by card?',
      'How can I pay?',
      'Can I pay in parts?',
      'How do I pay?',
      'Which cards can I pay with?',
    ],
  ],
  [
    'Enter the gift card code in the Gift card field at checkout. The amount is taken off your total.',
    [
      'How do I use my gift card?',
      'Where do I enter my gift card?',
      'Can I pay with a gift card?',
      'My gift card does not work.',
      'How do I redeem a gift card?',
      'Where does the gift card code go?',
      'Can I use a gift card online?',
    ],
  ],
  [
    'Yes. You earn one point for every dollar you spend, and 100 points give you 5 dollars off.',
    [
      'Do you have a loyalty program?',
      'Do I get points?',
      'How do points work?',
      'Can I earn points?',
      'What are points for?',
      'How many points do I get?',
      'Do you have a points program?',
    ],
  ],
  [
    'Students get 10 percent off with a valid student card. Sign up for our newsletter to hear about sales first.',
    [
      'Do you have a discount code?',
      'Are there any discounts?',
      'Do you have student discounts?',
      'Can I get a discount?',
      'Is there a discount for students?',
      'Do you give discounts?',
      'How do I get a discount?',
    ],
  ],
  [
    'The size guide on each bike page matches your height to a frame size. If you are between two sizes, pick the smaller one.',
    [
      'What size bike do I need?',
      'How do I choose a frame size?',
      'Which size fits me?',
      "I'm 170 cm tall. What size should I get?",
      'Is the medium size right for me?',
      'How do I know my bike size?',
      'Can you help me pick a size?',
    ],
  ],
  [
    "I'm sorry about that. Send us a photo from the Orders page and we'll send a replacement at no cost.",
    [
      'My bike arrived damaged.',
      'My order is damaged.',
      'The box arrived damaged.',
      'Something in my order is damaged.',
      'My helmet arrived damaged.',
      'The parts in my box are damaged.',
      'What if my order arrives damaged?',
    ],
  ],
  [
    'Open Account settings and choose Addresses. You can add, edit or remove an address there.',
    [
      'How do I change my address?',
      'Can I change my delivery address?',
      'I moved. How do I update my address?',
      'Can I save more than one address?',
      'Where do I edit my address?',
      'Can I ship to a different address?',
      'How do I add an address?',
    ],
  ],
  [
    "Click Forgot password on the login page and we'll email you a link to set a new one.",
    [
      'I forgot my password.',
      'How do I reset my password?',
      "I can't remember my password.",
      'My password does not work.',
      'How do I change my password?',
      'I lost my password.',
      'Can you reset my password?',
    ],
  ],
  [
    "I'm the support assistant for Northwind Cycles. I can help with orders, returns, repairs and questions about our bikes.",
    [
      'Who are you?',
      'Who are you, exactly?',
      'What are you?',
      'Who are you and what do you do?',
      'Who am I talking to?',
      'Tell me who you are.',
      'Hey, who are you?',
    ],
  ],
  [
    "You're welcome. Thanks for choosing Northwind Cycles, and have a great day!",
    [
      'Thanks!',
      'Thank you.',
      'Thank you so much!',
      'Thanks a lot.',
      'Great, thanks!',
      'Thanks for your help.',
      'Thank you, that helps.',
    ],
  ],
  [
    'Goodbye from Northwind Cycles! Ride safe.',
    ['Bye!', 'Goodbye.', 'Bye for now!', 'Bye, have a nice day.', 'Goodbye, and thanks.', 'OK, bye!', 'Goodbye!'],
  ],
  [
    'Yes, we sell electric bikes from four brands. Most go 60 to 100 km on one charge, and you can try them in our store.',
    [
      'Do you sell electric bikes?',
      'Do you have electric bikes?',
      'How far can an electric bike go?',
      'Do you have any electric bikes?',
      'Are electric bikes worth it?',
      'Can I try an electric bike?',
      'Which electric bikes do you sell?',
    ],
  ],
  [
    'Yes. You can rent a city bike for 20 dollars a day or an e-bike for 35 dollars a day at our store.',
    [
      'Do you rent bikes?',
      'Can I rent a bike for a day?',
      'How much is it to rent a bike?',
      'Can I rent a bike?',
      'Do you have bikes to rent?',
      'Can I rent a bike for the weekend?',
      'Where can I rent a bike?',
    ],
  ],
  [
    'Every bike has a five year warranty on the frame and two years on the parts. Keep your receipt or order number.',
    [
      'Is there a warranty?',
      'How long is the warranty?',
      'What does the warranty cover?',
      'My frame cracked. Is that under warranty?',
      'Do bikes come with a warranty?',
      'Is my bike still under warranty?',
      'What is your warranty?',
    ],
  ],
  [
    "I'm sorry to hear that. Tell me what went wrong and I'll do my best to make it right.",
    [
      "I'm really unhappy with my order.",
      "I'm unhappy with the service.",
      "I'm very unhappy.",
      'I am unhappy with my bike.',
      "I'm unhappy and want to complain.",
      "I'm not happy with my order.",
      "I'm so unhappy with this.",
    ],
  ],
  [
    "A strong U-lock is the best choice for city parking. Lock the frame to something that can't be moved.",
    [
      'What lock do you recommend?',
      'Which lock should I buy?',
      'What is the best lock?',
      'Do you sell locks?',
      'Which bike lock is best?',
      'Is a chain lock good enough?',
      'What lock should I use?',
    ],
  ],
];

const PHRASINGS = 7;
for (const [answer, phrasings] of FAMILIES)
  if (phrasings.length !== PHRASINGS)
    throw new Error(`${answer}: ${phrasings.length} phrasings, expected ${PHRASINGS}`);

// Round after round, one phrasing of every family: row k is phrasing floor(k / families) of family k mod families.
const rows = [];
for (let round = 0; round < PHRASINGS; round++)
  for (const [answer, phrasings] of FAMILIES) rows.push({ text: `User: ${phrasings[round]}\nAssistant: ${answer}` });

// Every tenth row is held out, into a file of its own: the demo's validation rows in the CLI and in the studio alike.
const isHeldOut = (index) => index % 10 === 9;
const write = (name, part) => {
  const file = fileURLToPath(new URL(`../../resources/demo/${name}`, import.meta.url));
  fs.writeFileSync(file, part.map((row) => JSON.stringify(row)).join('\n') + '\n');
  console.log(`wrote ${file}: ${part.length} rows`);
};
write(
  'data.jsonl',
  rows.filter((_, i) => !isHeldOut(i)),
);
write(
  'held-out.jsonl',
  rows.filter((_, i) => isHeldOut(i)),
);
console.log(`${FAMILIES.length} answers`);
