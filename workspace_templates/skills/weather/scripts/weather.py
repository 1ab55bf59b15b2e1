"""Print the weather for a place from wttr.in; a clear message when it cannot be reached."""

import json
import sys
import urllib.parse
import urllib.request

place = " ".join(sys.argv[1:]).strip() or "here"
url = f"https://wttr.in/{urllib.parse.quote(place)}?format=j1"
try:
    with urllib.request.urlopen(url, timeout=8) as response:
        data = json.load(response)
except (OSError, ValueError) as exc:
    print(f"The weather service (wttr.in) cannot be reached right now ({type(exc).__name__}); no forecast.")
    sys.exit(1)
now = data["current_condition"][0]
print(f"{place}: {now['weatherDesc'][0]['value']}, {now['temp_C']} C (feels {now['FeelsLikeC']} C), "
      f"wind {now['windspeedKmph']} km/h")
for day in data.get("weather", [])[:3]:
    print(f"{day['date']}: {day['mintempC']}-{day['maxtempC']} C")
