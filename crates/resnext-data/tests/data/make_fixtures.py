# Regenerates the test images in this folder (Pillow, numpy).
import numpy as np
from PIL import Image

rng = np.random.default_rng(3)
base = rng.integers(0, 256, (41, 53, 3), dtype=np.uint8)
src = Image.fromarray(base)
src.save("pil_src.png")
cases = {"down_16x12": ((16, 12), None), "up_80x60": ((80, 60), None), "vert_53x20": ((53, 20), None),
         "horiz_20x41": ((20, 41), None), "crop_5_7_30_25_to_24x24": ((24, 24), (5, 7, 35, 32))}
for name, (size, box) in cases.items():
    im = src.crop(box) if box else src
    im.resize(size, Image.BILINEAR).save(f"pil_{name}.png")
Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8), "L").save("gray.png")
Image.fromarray(rng.integers(0, 256, (20, 30, 2), dtype=np.uint8), "LA").save("gray_alpha.png")
Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), "RGBA").save("rgba.png")
Image.fromarray(rng.integers(0, 65535, (20, 30), dtype=np.uint16)).save("gray16.png")
src.convert("P", palette=Image.ADAPTIVE, colors=16).save("palette.png")
src.convert("P", palette=Image.ADAPTIVE, colors=16).save("palette.gif")
src.convert("CMYK").save("cmyk.jpg", quality=90)
src.save("plain.bmp"); src.save("plain.tiff"); src.save("plain.webp", lossless=True)
ex = Image.Exif(); ex[0x0112] = 6
src.save("exif_rot6.jpg", exif=ex.tobytes(), quality=95)
