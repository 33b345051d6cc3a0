{#- feed.xsl: shown by a browser that opens an RSS or Atom file; feed readers ignore it.
    Plain XSLT 1.0 (what browsers run); entry summaries are HTML escaped in the feed, so only
    titles, links and dates are shown, which needs no disable-output-escaping (Firefox does
    not support it). No template variables: `build` writes it as it is. -#}
<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom">
  <xsl:output method="html" encoding="UTF-8" indent="yes"
      doctype-system="about:legacy-compat"/>
  <xsl:template match="/">
    <xsl:variable name="title" select="rss/channel/title | atom:feed/atom:title"/>
    <xsl:variable name="about" select="rss/channel/description | atom:feed/atom:subtitle"/>
    <xsl:variable name="site"
        select="rss/channel/link | atom:feed/atom:link[@rel='alternate']/@href"/>
    <html>
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (feed)</title>
        <style>
          body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;
            padding:0 1rem;line-height:1.5}
          .note{background:#f4f1fa;border-radius:.5rem;padding:.8rem 1rem}
          li{margin:.7rem 0} time{color:#666;font-size:.9em}
        </style>
      </head>
      <body>
        <p class="note">This is a web feed. Copy the address of this page into your feed
          reader (Feedly, Inoreader, NetNewsWire, Thunderbird...) to follow it.</p>
        <h1><xsl:value-of select="$title"/></h1>
        <p><xsl:value-of select="$about"/></p>
        <p><a href="{$site}">Visit the site</a></p>
        <ul>
          <xsl:for-each select="rss/channel/item">
            <li><a href="{link}"><xsl:value-of select="title"/></a><br/>
              <time><xsl:value-of select="pubDate"/></time></li>
          </xsl:for-each>
          <xsl:for-each select="atom:feed/atom:entry">
            <li><a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of
                select="atom:title"/></a><br/>
              <time><xsl:value-of select="substring(atom:published, 1, 10)"/></time></li>
          </xsl:for-each>
        </ul>
      </body>
    </html>
  </xsl:template>
</xsl:stylesheet>
