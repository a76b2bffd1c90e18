"""Writes vader_reference.tsv: the reference VADER's scores of test sentences.

Run with the reference package on the path, e.g.
    pip download --no-deps vaderSentiment==3.3.2 && unzip the wheel
    PYTHONPATH=<unzipped> python3 vader_reference.py
The first sentences are the examples of the reference's own demo (whose
scores its README publishes); the rest exercise each rule.
"""
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

SENTENCES = [
    # The reference's demo examples.
    "VADER is smart, handsome, and funny.",
    "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.",
    "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, handsome, and FUNNY!!!",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "The book was good.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "Not bad at all",
    "Sentiment analysis has never been good.",
    "Sentiment analysis has never been this good!",
    "Most automated sentiment analysis tools are shit.",
    "With VADER, sentiment analysis is the shit!",
    "Other sentiment analysis tools can be quite bad.",
    "On the other hand, VADER is quite bad ass",
    "VADER is such a badass!",
    "Without a doubt, excellent idea.",
    "Roger Dodger is one of the most compelling variations on this theme.",
    "Roger Dodger is at least compelling as a variation on the theme.",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "Not such a badass after all.",
    "Without a doubt, an excellent idea.",
    "It was one of the worst movies I've seen, despite good reviews.",
    "Unbelievably bad acting!!",
    "Poor direction.",
    "VERY poor production.",
    "The movie was bad.",
    "Very bad movie.",
    "VERY BAD movie!",
    "balloons", "cake", "candles", "happy birthday", "friends", "laughing", "smiling", "party",
    "riot", "fire", "fight", "blood", "mob", "war", "police", "tear gas",
    # Rules one at a time.
    "I'm surprised to see just how amazingly helpful VADER is!",
    "no problem at all",
    "there is no good reason",
    "no, this is not good",
    "it is no great or good",
    "good good but good",
    "good but bad but great",
    "great but not great",
    "nice but nice",
    "this is kind of good",
    "this is sort of bad",
    "it is just enough good",
    "yeah right, that was great",
    "kiss of death for the brand",
    "a cake to die for",
    "the new album is the bomb",
    "at least good",
    "very least good",
    "the least good option",
    "never so happy",
    "never this happy",
    "I never really liked it",
    "it isn't bad at all",
    "it wasn't very good",
    "WOW what a GREAT day",
    "what a GREAT DAY",
    "Is this good??",
    "Is this good????",
    "Terrible!!!!!!",
    "why??? why is it so bad?",
    "😀😀 great",
    "love🙂it",
    "I rarely enjoy this",
    "seldom good, seldom bad",
    "Without doubt great",
    "The stock is up, but the outlook is bleak.",
    "$TSLA to the moon 🚀🚀",
    "bullish on $AAPL, great earnings beat",
    "Worst. Product. Ever.",
    "hmm",
    "",
    "!!!",
    "not not good",
    "extremely terrible, absolutely awful",
    "Hardly a success",
    "The service was barely acceptable.",
    "the food was GOOD but the service was BAD",
    "she is so not into it",
    "I don't think it's a bad idea, but it isn't a good one either",
]

analyzer = SentimentIntensityAnalyzer()
with open("vader_reference.tsv", "w", encoding="utf-8") as out:
    out.write("# text\tcompound\tneg\tneu\tpos  (vaderSentiment 3.3.2, rounded as it prints)\n")
    for sentence in SENTENCES:
        s = analyzer.polarity_scores(sentence)
        out.write(f"{sentence}\t{s['compound']}\t{s['neg']}\t{s['neu']}\t{s['pos']}\n")
