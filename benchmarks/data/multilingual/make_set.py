# ruff: noqa: RUF001 -- Chinese and Japanese punctuation is full width; memories are long
"""Writes set.json: the judged memories and questions, kept here as readable Python."""

from __future__ import annotations

import json
from pathlib import Path

# (id, memory); ids say the kind and the topic.
DOCS = [
    # Chinese
    ("zh-apple", "我喜欢吃苹果，每天早上吃一个。"),
    ("zh-tokyo", "我在东京工作了三年，后来回到上海。"),
    ("zh-dentist", "下周二下午三点要去看牙医，别忘了带医保卡。"),
    ("zh-birthday", "妈妈的生日是五月十二号，我们打算去餐厅吃饭。"),
    ("zh-flight", "航班改到明天早上八点，从北京首都机场出发。"),
    ("zh-cat", "我们家的猫叫小白，它很喜欢睡在沙发上。"),
    ("zh-password", "公司邮箱的密码每三个月要更换一次。"),
    ("zh-hiking", "周末和朋友去爬山，山顶的风景非常美。"),
    ("zh-allergy", "我对花生过敏，点菜的时候要提醒服务员。"),
    ("zh-meeting", "项目会议改到星期四上午十点，在三楼会议室。"),
    ("zh-x1", "今天天气很好，我们去公园散步了。"),
    ("zh-x2", "他在上海的一家银行工作。"),
    ("zh-x3", "晚上想吃火锅还是烤肉？"),
    ("zh-x4", "机场的咖啡太贵了。"),
    # Japanese
    ("ja-tokyo", "来月、東京に出張する予定です。ホテルはまだ予約していません。"),
    ("ja-ramen", "駅前の新しいラーメン屋はとても美味しかった。"),
    ("ja-dentist", "歯医者の予約は金曜日の午後四時です。"),
    ("ja-cat", "うちの猫はタマという名前で、魚が大好きです。"),
    ("ja-train", "新幹線で大阪まで二時間半かかりました。"),
    ("ja-coffee", "コーヒーは毎朝ブラックで飲みます。"),
    ("ja-birthday", "父の誕生日プレゼントにネクタイを買いました。"),
    ("ja-rain", "明日は雨が降るそうなので、傘を持って行きます。"),
    ("ja-x1", "週末は家でゆっくり映画を見ました。"),
    ("ja-x2", "大阪の友達から電話がありました。"),
    # Korean
    ("ko-weather", "오늘 날씨가 정말 좋아서 한강에 갔어요."),
    ("ko-kimchi", "어머니가 만든 김치찌개가 제일 맛있어요."),
    ("ko-x1", "내일은 회사에 일찍 가야 해요."),
    # German
    (
        "de-heating",
        "Die Heizung im Wohnzimmer ist seit Montag kaputt, der Vermieter weiß Bescheid.",
    ),
    ("de-train", "Die Straßenbahn fährt am Wochenende nur alle zwanzig Minuten."),
    ("de-contract", "Die Kündigungsfrist für den Handyvertrag beträgt drei Monate."),
    ("de-doctor", "Termin beim Hausarzt am Donnerstag um neun Uhr, Versichertenkarte mitnehmen."),
    ("de-cake", "Für den Geburtstag backe ich einen Käsekuchen mit Himbeeren."),
    ("de-bike", "Mein Fahrrad hat einen Platten, ich bringe es morgen in die Werkstatt."),
    ("de-taxes", "Die Steuererklärung muss bis Ende Juli beim Finanzamt sein."),
    ("de-dog", "Unser Hund Bello hat Angst vor Gewittern."),
    ("de-x1", "Das Wetter in Hamburg war gestern sehr windig."),
    ("de-x2", "Ich habe am Montag einen Termin bei der Bank."),
    ("de-x3", "Der Kuchen vom Bäcker war leider trocken."),
    # Code identifiers
    ("code-getuser", "Call getUserName() before rendering the profile header."),
    ("code-retries", "Set MAX_RETRIES to 5 in settings.py, the default of 3 was too low."),
    ("code-join", "Use os.path.join instead of string concatenation for file paths."),
    ("code-http", "The HTTPServer class logs every request to stderr."),
    ("code-parse", "parse_config_file raises ValueError on a missing section."),
    ("code-timeout", "requestTimeoutMs is 30000 in production and 5000 in staging."),
    ("code-flag", "The feature flag ENABLE_DARK_MODE stays off until the redesign ships."),
    ("code-hook", "useEffect cleanup closes the websocket when the component unmounts."),
    ("code-np", "np.linalg.norm of the embedding should be 1 after normalising."),
    ("code-init", "Put the imports in __init__.py so the package exposes them."),
    ("code-x1", "The user asked for a darker theme in the profile page."),
    ("code-x2", "Retries happen in the client, not the server."),
    ("code-x3", "The name field on the form is optional."),
    ("code-x4", "Paths on Windows use backslashes."),
    ("code-x5", "The request took too long and the page timed out."),
    # Emoji
    ("emoji-party", "🎉 We shipped the release on Friday!"),
    ("emoji-pizza", "Ordered 🍕 for the whole team tonight."),
    ("emoji-dog", "Walked the 🐶 twice today, it was sunny."),
    ("emoji-heart", "Thanks for the flowers ❤️"),
    ("emoji-rocket", "Deploy went out 🚀 no errors so far."),
    ("emoji-x1", "We celebrated the release with cake."),
    ("emoji-x2", "Pizza night is every Thursday."),
    ("emoji-x3", "The dog park was closed today."),
    # Stop words that are names
    ("stop-will", "Will fixed the garage door on Saturday."),
    ("stop-thewho", "We saw The Who live in 1982, best concert ever."),
    ("stop-may", "May starts her new job in June."),
    ("stop-it", "We watched It at the cinema, far too scary."),
    ("stop-us", "Flights to the US are cheaper in November."),
    ("stop-x1", "I will call you when I am home."),
    ("stop-x2", "Who is bringing the drinks to the party?"),
    ("stop-x3", "It may rain in the afternoon."),
    ("stop-x4", "The concert was sold out in minutes."),
    ("stop-x5", "Tell us what you think about it."),
    # English distractors (conversation turns)
    ("en-1", "I went hiking with Maria last weekend, the view from the top was amazing."),
    ("en-2", "My dentist appointment moved to Tuesday afternoon."),
    ("en-3", "The apple pie recipe needs two cups of flour."),
    ("en-4", "Can you remind me to call my mother on her birthday?"),
    ("en-5", "The flight to Tokyo was delayed by three hours."),
    ("en-6", "Our cat sleeps on the sofa all day."),
    ("en-7", "The train to Osaka was full, we had to stand."),
    ("en-8", "I drink my coffee black every morning."),
    ("en-9", "The heating in the living room is broken again."),
    ("en-10", "My bike has a flat tyre."),
    ("en-11", "Taxes are due at the end of July."),
    ("en-12", "The user name is shown in the header."),
    ("en-13", "We need to join the two tables on the user id."),
    ("en-14", "The server returned a 500 error."),
    ("en-15", "The config file is missing a section."),
    ("en-16", "Dark mode is my favourite setting."),
    ("en-17", "The component re-renders too often."),
    ("en-18", "The embedding model is small but fast."),
    ("en-19", "The package is published on PyPI."),
    ("en-20", "Ramen is my favourite food."),
    ("en-21", "I am allergic to peanuts."),
    ("en-22", "The meeting room on the third floor is booked."),
    ("en-23", "My password expired yesterday."),
    ("en-24", "The cake had raspberries on top."),
    ("en-25", "Our dog is afraid of thunderstorms."),
    ("en-26", "The tram runs every twenty minutes at weekends."),
    ("en-27", "My phone contract has a three month notice period."),
    ("en-28", "Kimchi stew is the best thing my mother makes."),
    ("en-29", "It was sunny by the river today."),
    ("en-30", "Remember the umbrella, it will rain tomorrow."),
    ("en-31", "He bought a tie for his father."),
    ("en-32", "The rocket launch was postponed."),
    ("en-33", "Thanks for the lovely evening."),
    ("en-34", "Friday's release had no errors."),
    ("en-35", "We ordered food for the team."),
    ("en-36", "Sorry, who is this?"),
    ("en-37", "Will you be at the office on Monday?"),
]

# (kind, question, relevant ids)
QUERIES = [
    ("zh", "苹果", ["zh-apple"]),
    ("zh", "东京", ["zh-tokyo"]),
    ("zh", "牙医", ["zh-dentist"]),
    ("zh", "妈妈生日", ["zh-birthday"]),
    ("zh", "航班几点出发", ["zh-flight"]),
    ("zh", "猫叫什么", ["zh-cat"]),
    ("zh", "邮箱密码", ["zh-password"]),
    ("zh", "爬山", ["zh-hiking"]),
    ("zh", "花生过敏", ["zh-allergy"]),
    ("zh", "项目会议", ["zh-meeting"]),
    ("ja", "東京出張", ["ja-tokyo"]),
    ("ja", "ラーメン", ["ja-ramen"]),
    ("ja", "歯医者の予約", ["ja-dentist"]),
    ("ja", "猫の名前", ["ja-cat"]),
    ("ja", "新幹線", ["ja-train"]),
    ("ja", "コーヒー", ["ja-coffee"]),
    ("ja", "父の誕生日", ["ja-birthday"]),
    ("ja", "傘", ["ja-rain"]),
    ("ko", "날씨", ["ko-weather"]),
    ("ko", "김치찌개", ["ko-kimchi"]),
    ("de", "Heizung kaputt", ["de-heating"]),
    ("de", "Straßenbahn Wochenende", ["de-train"]),
    ("de", "Kündigungsfrist Handyvertrag", ["de-contract"]),
    ("de", "Termin Hausarzt", ["de-doctor"]),
    ("de", "Käsekuchen", ["de-cake"]),
    ("de", "Fahrrad Werkstatt", ["de-bike"]),
    ("de", "Steuererklärung", ["de-taxes"]),
    ("de", "Hund Gewitter", ["de-dog"]),
    ("code", "get user name", ["code-getuser"]),
    ("code", "max retries", ["code-retries"]),
    ("code", "os.path.join", ["code-join"]),
    ("code", "http server logs", ["code-http"]),
    ("code", "parse config file error", ["code-parse"]),
    ("code", "request timeout", ["code-timeout"]),
    ("code", "ENABLE_DARK_MODE", ["code-flag"]),
    ("code", "useEffect", ["code-hook"]),
    ("code", "linalg norm", ["code-np"]),
    ("code", "__init__.py imports", ["code-init"]),
    ("emoji", "🎉", ["emoji-party"]),
    ("emoji", "🍕", ["emoji-pizza"]),
    ("emoji", "🐶", ["emoji-dog"]),
    ("emoji", "❤️", ["emoji-heart"]),
    ("emoji", "🚀 deploy", ["emoji-rocket"]),
    ("stop", "Who is Will?", ["stop-will"]),
    ("stop", "The Who concert", ["stop-thewho"]),
    ("stop", "when does May start?", ["stop-may"]),
    ("stop", "did we watch It?", ["stop-it"]),
    ("stop", "flights to the US", ["stop-us"]),
    ("stop", "who is will", ["stop-will"]),
    ("stop", "The Who", ["stop-thewho"]),
]


def main() -> None:
    ids = {d for d, _ in DOCS}
    assert len(ids) == len(DOCS)
    for _, _, relevant in QUERIES:
        assert set(relevant) <= ids, relevant
    out = {
        "docs": [{"id": d, "text": t} for d, t in DOCS],
        "queries": [{"kind": k, "q": q, "relevant": r} for k, q, r in QUERIES],
    }
    path = Path(__file__).with_name("set.json")
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(DOCS)} memories, {len(QUERIES)} questions -> {path}")


if __name__ == "__main__":
    main()
