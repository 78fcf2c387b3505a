package bench

// Word lists the traffic model draws from. They are small on purpose: the
// variety that matters to a collector (lengths, escaping, repetition that
// compresses like real data) comes from combining them.

var siteWords = []string{
	"acme", "northwind", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "cyberdyne",
	"soylent", "tyrell", "oscorp", "vandelay", "pied-piper", "dunder", "gringotts", "monarch", "aperture", "blue-sun",
	"everlane", "papertrail", "brightleaf", "quantum", "nimbus", "harbor", "juniper", "cobalt", "maple", "summit",
}

var siteTLDs = []string{".com", ".com", ".com", ".io", ".co.uk", ".de", ".fr", ".net", ".org", ".shop"}

var sectionWords = []string{
	"blog", "products", "docs", "pricing", "about", "careers", "support", "news", "shop", "guides",
	"features", "customers", "integrations", "changelog", "events",
}

var slugWords = []string{
	"getting-started", "how-to-choose", "best-practices", "release-notes", "summer-sale", "wireless-headphones",
	"running-shoes", "annual-report", "case-study", "faq", "installation", "pricing-explained", "comparison",
	"2025-roadmap", "migration-guide", "security", "api-reference", "tutorial", "webinar", "gift-ideas",
	"caf\u00e9-au-lait", "gr\u00fcn-tee", "\u65e5\u672c\u8a9e-guide",
}

var titleWords = []string{
	"Home", "Pricing", "Blog", "Documentation", "Getting Started", "Summer Sale \u2013 30% off", "Careers",
	"Contact us", "Product tour", "Release notes", "Checkout", "Your cart", "Sign up", "Caf\u00e9 & \"Bistro\"",
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
	"Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}

var languages = []string{"en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR", "nl-NL"}

var timezones = []string{"America/New_York", "Europe/London", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles", "Australia/Sydney", "America/Sao_Paulo"}

var screens = [][2]int{{1920, 1080}, {1440, 900}, {2560, 1440}, {390, 844}, {412, 915}, {1366, 768}, {820, 1180}}

// Where a session came from. Weighted by repetition.
var externalReferrers = []string{
	"https://www.google.com/", "https://www.google.com/", "https://www.google.com/", "https://www.bing.com/",
	"https://duckduckgo.com/", "https://t.co/Xy12abC", "https://www.facebook.com/", "https://www.linkedin.com/feed/",
	"https://news.ycombinator.com/item?id=40512345", "https://www.reddit.com/r/webdev/comments/1d2x3y/",
	"https://l.instagram.com/?u=https%3A%2F%2Fexample.com", "android-app://com.google.android.gm/",
}

type utmSet struct{ source, medium, campaign, term, content string }

var utmSets = []utmSet{
	{"google", "cpc", "summer_sale_2025", "running shoes", "ad_variant_b"},
	{"facebook", "paid_social", "retargeting_q3", "", "carousel_1"},
	{"newsletter", "email", "weekly_digest_27", "", "header_link"},
	{"linkedin", "social", "b2b_launch", "", ""},
	{"bing", "cpc", "brand", "acme pricing", ""},
	{"partner-blog", "referral", "affiliate_42", "", "sidebar"},
}

var customEvents = []string{"click", "scroll", "form_submit", "add_to_cart", "purchase", "video_play", "signup", "download", "search"}
