#!/usr/bin/env python3
"""train_cifar.py: train a CIFAR-10 network with the FeatureNorm paper's recipe.

    /usr/bin/python3 scripts/train_cifar.py --arch resnet18_cifar --data DATA --out OUT.safetensors

Recipe (Yu et al., CVPR 2023, and the authors' code): SGD with momentum 0.9, weight
decay 5e-4, batch 128, learning rate 0.1 divided by 10 at epochs 50, 75 and 90, 100
epochs; augmentation: random 32x32 crop of the image zero-padded by 4, random horizontal
flip; inputs (x/255 - 0.5) / 0.5, the engine's default normalisation for these networks.
The networks are scripts/reference_models.py's (resnet18_cifar, wrn28_10 with dropout 0,
vgg11_cifar), so the state_dict names are the ones the engine loads.

DATA is the CIFAR-10 binary folder (cifar-10-batches-bin: data_batch_1..5.bin and
test_batch.bin, read directly, no torchvision download) or an image-folder root with
train/<class>/ and test/<class>/ (labels are the sorted class names; images not 32x32 are
resized). The result is written as safetensors; evaluate it with e.g.

    featurenorm score --arch resnet18_cifar --stem-padding 2 --weights OUT.safetensors ...

A smoke run on the CPU: --epochs 1 --limit 256 --device cpu.
"""
import argparse
import glob
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as ref  # noqa: E402
from make_fixtures import write_safetensors  # noqa: E402

ARCHS = ("resnet18_cifar", "wrn28_10", "vgg11_cifar")
CROP_PADDING = 4
EVAL_BATCH = 500


def read_binary(paths, limit):
    """CIFAR-10 binary records (1 label byte, then 1024 bytes each of R, G, B)."""
    records = np.concatenate([np.fromfile(p, dtype=np.uint8).reshape(-1, 3073) for p in paths])
    if limit:
        records = records[:limit]  # the batches are already in random order
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    return torch.from_numpy(images.copy()), torch.from_numpy(records[:, 0].astype(np.int64))


def read_folder(root, limit):
    """An image folder with one sub-folder per class; with a limit, every k-th image of
    the sorted list, so that every class is represented."""
    from PIL import Image

    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    items = [(path, label) for label, name in enumerate(classes)
             for path in sorted(glob.glob(os.path.join(root, name, "*")))]
    if not items:
        raise SystemExit(f"train_cifar.py: {root}: no images in class folders")
    if limit and limit < len(items):
        items = items[::len(items) // limit][:limit]
    images = np.empty((len(items), 3, 32, 32), dtype=np.uint8)
    for i, (path, _) in enumerate(items):
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (32, 32):
                im = im.resize((32, 32), Image.BILINEAR)
            images[i] = np.asarray(im).transpose(2, 0, 1)
    return torch.from_numpy(images), torch.tensor([label for _, label in items])


def load_cifar10(data, limit):
    """(train images, train labels, test images, test labels): uint8 N x 3 x 32 x 32."""
    batches = sorted(glob.glob(os.path.join(data, "data_batch_*.bin")))
    if batches:
        test = os.path.join(data, "test_batch.bin")
        return read_binary(batches, limit) + read_binary([test], limit)
    if os.path.isdir(os.path.join(data, "train")) and os.path.isdir(os.path.join(data, "test")):
        return (read_folder(os.path.join(data, "train"), limit)
                + read_folder(os.path.join(data, "test"), limit))
    raise SystemExit(f"train_cifar.py: {data}: neither a CIFAR-10 binary folder (data_batch_*.bin) "
                     f"nor a folder with train/ and test/ class folders")


def augment(x, gen):
    """Random crop of the zero-padded batch and random horizontal flip, per image."""
    n, size, dev = x.shape[0], x.shape[-1], x.device
    padded = F.pad(x, (CROP_PADDING,) * 4).permute(0, 2, 3, 1)  # N x H x W x C
    dy, dx = torch.randint(0, 2 * CROP_PADDING + 1, (2, n, 1), generator=gen).to(dev)
    span = torch.arange(size, device=dev)
    rows, cols = (dy + span)[:, :, None], (dx + span)[:, None, :]
    out = padded[torch.arange(n, device=dev)[:, None, None], rows, cols].permute(0, 3, 1, 2)
    flip = (torch.rand(n, generator=gen) < 0.5).to(dev)[:, None, None, None]
    return torch.where(flip, out.flip(3), out)


def normalise(x):
    return (x.float() / 255 - 0.5) / 0.5


@torch.no_grad()
def accuracy(model, images, labels, device):
    model.eval()
    hits = 0
    for i in range(0, len(images), EVAL_BATCH):
        logits = model(normalise(images[i:i + EVAL_BATCH].to(device)))
        hits += (logits.argmax(1).cpu() == labels[i:i + EVAL_BATCH]).sum().item()
    return hits / len(images)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=ARCHS)
    p.add_argument("--data", required=True, help="cifar-10-batches-bin, or a folder with train/ and test/")
    p.add_argument("--out", required=True, help="weights to write (.safetensors)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--milestones", default="50,75,90", help="epochs where lr is divided by 10")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--stem-padding", type=int, choices=(1, 2), default=2,
                   help="resnet18_cifar stem padding (the authors' code used 2: layer4 is 5x5)")
    p.add_argument("--limit", type=int, default=0, help="use at most N train and N test images")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True

    start = time.monotonic()
    train_x, train_y, test_x, test_y = load_cifar10(args.data, args.limit)
    print(f"data: {len(train_x)} train, {len(test_x)} test images from {args.data} "
          f"({time.monotonic() - start:.1f} s)", flush=True)
    train_x, train_y = train_x.to(device), train_y.to(device)

    options = {"stem_padding": args.stem_padding} if args.arch == "resnet18_cifar" else {}
    model, _ = ref.build(args.arch, **options)
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay)
    milestones = [int(m) for m in args.milestones.split(",") if m]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)

    for epoch in range(1, args.epochs + 1):
        model.train()
        t0, loss_sum, hits = time.monotonic(), 0.0, 0
        order = torch.randperm(len(train_x), generator=gen).to(device)
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            logits = model(normalise(augment(train_x[idx], gen)))
            loss = F.cross_entropy(logits, train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            hits += (logits.argmax(1) == train_y[idx]).sum().item()
        print(f"epoch {epoch}/{args.epochs}: lr {opt.param_groups[0]['lr']:.4g}, "
              f"loss {loss_sum / len(order):.4f}, train accuracy {100 * hits / len(order):.2f} %, "
              f"{time.monotonic() - t0:.1f} s", flush=True)
        sched.step()

    acc = accuracy(model, test_x, test_y, device)
    print(f"test accuracy {100 * acc:.2f} % on {len(test_x)} images")
    tmp = args.out + ".tmp"
    write_safetensors(tmp, model.state_dict())
    os.replace(tmp, args.out)
    flags = f" --stem-padding {args.stem_padding}" if args.arch == "resnet18_cifar" else ""
    print(f"wrote {args.out}: featurenorm score --arch {args.arch}{flags} --weights {args.out} ...")


if __name__ == "__main__":
    main()
