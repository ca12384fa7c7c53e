// The built-in English text that the tiny tokenizer learns its merges from. Plain, varied prose (questions,
// answers, numbers, punctuation) so that common words and word pieces become single tokens.
export const TINY_CORPUS = `
Hello! How can I help you today? I am happy to answer your questions about your order, your account, or anything else.
Thank you for your message. We have received your request and we will get back to you as soon as possible.
Please check your email for a confirmation link. If you did not receive the email, look in your spam folder first.
Your order has been shipped. It should arrive within three to five business days. You can track it from your account page.
To reset your password, open the settings page, choose "Account", and click "Reset password". We will send you a new link.
The store is open from 9 am to 6 pm on weekdays and from 10 am to 4 pm on Saturday. We are closed on Sunday.
You can return any item within 30 days of delivery. The item should be unused and in its original box.
We are sorry for the delay. Our team is working on it, and we will let you know when the problem is fixed.
What is the weather like today? It is sunny and warm in the morning, but it will rain in the evening.
The train leaves the station at 7:45 and arrives in the city about an hour later. Tickets cost 12 dollars.
She opened the window, made a cup of tea, and read the letter again. Nothing in it had changed since yesterday.
They walked along the river until the sun went down, talking about the books they had read and the places they wanted to see.
A good question is often more useful than a quick answer. Take your time, think it through, and then decide.
Learning a new skill takes practice. Start with small steps, repeat them every day, and you will see progress.
The children played in the garden while their parents prepared dinner in the kitchen. The house smelled of fresh bread.
Water boils at 100 degrees Celsius at sea level. At higher places, such as the top of a mountain, it boils at a lower temperature.
The Earth goes around the Sun once every year, and it turns around itself once every day. The Moon goes around the Earth.
Plants need light, water, and air to grow. Their leaves turn sunlight into the energy they use to live.
Computers store information as numbers. A program is a list of instructions that tells the computer what to do.
If the app does not start, restart your computer and try again. If the problem continues, install the latest version.
You can change your language, your time zone, and your notification settings from the preferences menu.
Our support team answers most questions within one working day. For urgent problems, please call us by phone.
The new model is faster, lighter, and easier to use than the old one. It also comes with a longer warranty.
Do you ship to other countries? Yes, we ship to most countries in Europe, North America, and Asia. Shipping times vary.
Can I change my order after I placed it? Yes, as long as it has not been shipped yet. Contact us with your order number.
How do I cancel my subscription? Open your account, choose "Subscription", and click "Cancel". You will keep access until the end of the month.
Is my payment information safe? Yes. We never store your full card number, and every payment is encrypted.
Where can I find my invoice? Every invoice is attached to your confirmation email and listed under "Orders" in your account.
Why was my card declined? Your bank may have blocked the payment. Please check the card details or try another card.
I would like to speak to a person. Of course! Please leave your name and phone number, and someone will call you back.
The meeting has been moved to Thursday afternoon. Please bring your notes and the latest numbers from the report.
First, mix the flour and the sugar. Then add the eggs and the milk, and stir until the batter is smooth.
Turn left at the second light, go straight for about two hundred meters, and the library will be on your right.
The museum has a large collection of paintings, old maps, and tools from the early history of the region.
Good morning, everyone. Today we will talk about how to write clear and simple sentences that people enjoy reading.
The doctor said that I should drink more water, sleep at least seven hours, and walk for thirty minutes every day.
He forgot his umbrella at home, so he waited under the bridge until the rain stopped and the sky cleared.
There are seven days in a week, twelve months in a year, and about three hundred and sixty five days in a year.
One, two, three, four, five, six, seven, eight, nine, ten. 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 50, 100, 1000.
Our office is at 42 Market Street, second floor. The entrance is next to the coffee shop on the corner.
Please do not share your password with anyone. Our team will never ask you for it by email or by phone.
The battery lasts about ten hours. To make it last longer, lower the screen brightness and close apps you are not using.
If you have any other questions, just ask. We are always happy to help. Have a nice day!
Thanks a lot for your help! You're welcome. It was my pleasure. Let me know if there's anything else I can do.
I don't know the answer to that question, but I'll find out and get back to you. I'm sure we can work it out.
That's a great idea. Let's try it and see what happens. We'll learn something either way.
The price includes taxes and free delivery for orders over 50 dollars. Smaller orders pay a delivery fee of 5 dollars.
The word "history" comes from an old word that means "learning by asking". Many words have long and surprising stories.
When you write an email, start with a short greeting, say what you need in the first sentence, and end with a thank you.
The cat slept on the warm chair by the window all afternoon, and woke up only when it heard the sound of its food bowl.
Every morning the baker opens the shop at six, and by seven the shelves are full of bread, cakes, and small pastries.
Questions and answers, orders and returns, accounts and passwords, payments and invoices, help and support.
`;
